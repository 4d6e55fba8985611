"""Worker for the DDP equivalence test: ``torchrun --nproc_per_node N tests/ddp_train_script.py OUT BATCH``.

Trains one epoch (3 steps) of a small instance-norm U-Net on fixed synthetic volumes and writes the parameters
from rank 0 to OUT. Not collected by pytest (no ``test_`` prefix). Convolutions carry no bias: a bias right before
instance normalisation has a true gradient of zero, so Adam would turn the rounding noise of its gradient into
full-size steps that differ between any two summation orders.
"""

import sys

import torch
from monai.data import Dataset
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from hccomics.imaging.engine import Trainer, init_distributed, is_main_process


def synthetic(n: int = 12) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        image = torch.rand(1, 16, 16, 8, generator=g)
        items.append({"image": image, "label": (image > 0.6).float()})
    return items


def main() -> None:
    out, batch = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    init_distributed()
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, bias=False)
    trainer = Trainer(net, loss=DiceCELoss(to_onehot_y=True, softmax=True), epochs=1, batch_size=batch, lr=1e-2,
                      scheduler=None, device="cpu", progress=False)
    trainer.fit(Dataset(synthetic()), shuffle=False)
    if is_main_process():
        torch.save(net.state_dict(), out)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
