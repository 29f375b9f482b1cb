"""One epoch of training, one pass of evaluation, and the tensors they run on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lockstep.data import Example
from lockstep.model import Preprocessing


class ExampleDataset(Dataset):
    """Examples as (normalised tensor, label), loaded lazily; horizontal flips when augment is set."""

    def __init__(self, examples: list[Example], preprocessing: Preprocessing, augment: bool = False) -> None:
        self.examples = examples
        self.preprocessing = preprocessing
        self.augment = augment
        # Images already in memory (the generated dataset) are converted once, not once per epoch.
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        tensor = self.cache.get(index)
        if tensor is None:
            tensor = self.preprocessing.to_tensor(example.load())
            if example.image is not None:
                self.cache[index] = tensor
        if self.augment and torch.rand(()) < 0.5:
            tensor = tensor.flip(-1)
        return tensor, example.label


@dataclass
class EpochResult:
    loss: float
    accuracy: float


def train_one_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: torch.device
) -> EpochResult:
    model.train()
    criterion = nn.CrossEntropyLoss()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = criterion(logits, labels)
        loss.backward()
        optimizer.step()

        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    return EpochResult(total_loss / seen, correct / seen)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int
) -> tuple[EpochResult, list[list[int]]]:
    """Return loss and accuracy, and the confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    total_loss, seen = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        total_loss += criterion(logits, labels).item()
        predicted = logits.argmax(1)
        for true, guess in zip(labels.cpu().tolist(), predicted.cpu().tolist(), strict=True):
            confusion[true, guess] += 1
        seen += len(labels)
    accuracy = confusion.diag().sum().item() / seen
    return EpochResult(total_loss / seen, accuracy), confusion.tolist()
