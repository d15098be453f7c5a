"""Hand-designed baselines trained and evaluated with the same pipeline as HiNAS networks.

DnCNN (Zhang et al., TIP 2017): conv-ReLU, (depth-2) x conv-BN-ReLU, conv; residual learning
(the network predicts the noise, the output is ``x - net(x)``). Depth 17 and 64 channels give
the usual 0.56 M parameters for grey images.
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    def __init__(self, in_channels: int = 1, depth: int = 17, channels: int = 64):
        super().__init__()
        if depth < 3:
            raise ValueError("DnCNN needs depth >= 3")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, in_channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)
        self.task = "denoise"
        self.in_channels = in_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
