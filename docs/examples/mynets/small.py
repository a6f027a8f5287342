"""A small network of one's own, as a user would write it: ``module: "mynets.small:build"``, ``code_path: docs/examples``.

Convolutions with BatchNorm, one residual block and a pooled linear head: the shapes most user models have.
docs/support.md shows what each technique and runtime does with it.
"""

from torch import nn


class Small(nn.Module):
    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu(x + self.block(x))
        return self.head(self.pool(x).flatten(1))


def build(num_classes: int, width: int = 16) -> nn.Module:
    return Small(num_classes, width)
