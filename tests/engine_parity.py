"""What the backend tests (torch-free ONNX Runtime, OpenVINO) share: texts of mixed lengths (the last one long
enough to pad the others), a model-folder copy (so an export written into it stays in the test's tmp_path), and
row-wise cosines."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

TEXTS = ["hello world", "how do i get a refund", "the cat sat on the mat", "a", "password reset help please",
         "what is your return policy for a broken item that was delivered late " * 3]


def copy_model(src: Path, tmp_path: Path, name: str = "model") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
