"""Toy data and a toy model for testing trainers, and their registration as the recipe names 'toy'.

Not part of the library: the test suite, the torchrun workers of test_ddp.py and the notebooks' test cells import it
(`sys.path` gets this folder). Chapter 09 writes the same two classes in its text, unexported."""
import torch
import torch.nn as nn
from torch.utils.data import Dataset


class ToyVideo(Dataset):
    "Tiny deterministic videos for testing trainers: a 3x3 square at constant velocity; item i depends on (seed, epoch, i)."
    def __init__(self, n: int = 64, T: int = 4, size: int = 16, seed: int = 0):  # sequences, frames in (= out), side
        self.n, self.T, self.size, self.seed, self.epoch = n, T, size, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch  # fresh sequences every epoch, like Moving MNIST

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + int(i))
        pos, vel = torch.randint(0, self.size - 3, (2,), generator=g), torch.randint(-1, 2, (2,), generator=g)
        frames = torch.zeros(2 * self.T, 1, self.size, self.size)
        for t in range(2 * self.T):
            r, c = ((pos + vel * t) % (self.size - 3)).tolist()  # wrap around the canvas
            frames[t, 0, r:r + 3, c:c + 3] = 1.
        return frames[:self.T], frames[self.T:]  # x, y: (T, 1, S, S) each


class ToyNet(nn.Module):
    "A tiny (B, T, C, H, W) -> (B, T, C, H, W) conv net with dropout: the trainer's test model, nothing like TAU."
    def __init__(self, T: int = 4, C: int = 1, hid: int = 16, p: float = 0.1):  # frames, channels, width, dropout
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(T * C, hid, 3, padding=1), nn.GELU(), nn.Dropout(p),
                                 nn.Conv2d(hid, T * C, 3, padding=1))

    def forward(self, x):
        B, T, C, H, W = x.shape
        return x[:, -1:] + self.net(x.reshape(B, T * C, H, W)).reshape(B, T, C, H, W)  # (B, T*C, H, W) and back


def toy_data(cfg):
    "The recipes' data builder for data='toy': (train, valid) ToyVideo of the model's T and frame size."
    from tau_course.recipes import in_shape_of
    T, _, S, _ = in_shape_of(cfg)
    return (ToyVideo(cfg.data_kw.get('length', 64), T, S, cfg.seed),
            ToyVideo(cfg.data_kw.get('val_length', 16), T, S, cfg.seed + 1))


def register_toys():
    "Register data='toy' and model='toy' with the recipes (idempotent); returns the two classes."
    from tau_course.recipes import register_data, register_model
    register_data('toy', toy_data)
    register_model('toy', ToyNet, in_shape=(4, 1, 16, 16))
    return ToyVideo, ToyNet


register_toys()
