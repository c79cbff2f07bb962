"""CLIP's image preprocessing in NumPy and Pillow, for the torch-free backend: the pixels transformers'
``CLIPImageProcessor`` (its PIL backend, which transformers uses without torchvision, and which
sentence-transformers therefore uses there too) gives, without importing torch or transformers.

Per image (CLIP, Radford et al. 2021, as transformers implements it): to RGB (a PIL image with transparency is
composited onto white; an array's 1 channel repeated, 4 channels composited onto white), resize so the shortest
side is ``size["shortest_edge"]`` (the other side ``int(size * long / short)``; Pillow, bicubic by default),
center crop to ``crop_size`` (zero-padded when smaller), rescale (``x * rescale_factor`` in float64, then
float32), normalize (``(x - mean) / std`` in float32 per channel); channels first. Arrays may be ``[H, W, C]`` or
``[C, H, W]`` (an ambiguous shape is read channels-first, as transformers does); float arrays in ``[0, 1]`` are
scaled to bytes for Pillow's resize and back, as transformers does.

>>> processor = ImageProcessor.from_config({"size": {"shortest_edge": 224}, "crop_size": 224})   # doctest: +SKIP
>>> processor([image]).shape                                                                  # doctest: +SKIP
(1, 3, 224, 224)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: OpenAI's CLIP normalization (transformers' ``OPENAI_CLIP_MEAN`` / ``OPENAI_CLIP_STD``), the class defaults
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: processor types whose preprocessing this module reproduces
CLIP_PROCESSOR_TYPES = ("CLIPImageProcessor", "CLIPImageProcessorFast", "CLIPImageProcessorPil", "CLIPFeatureExtractor")
#: settings transformers' CLIP processor may hold that this module does not implement, with the value that is a no-op
_UNSUPPORTED = {"do_pad": (None, False), "pad_size": (None,), "do_reduce_labels": (None, False)}


def _size(value: Any, *, square: bool, what: str) -> dict[str, int]:
    """transformers' ``get_size_dict``: an int is a shortest edge (``square=False``) or a square crop."""
    if isinstance(value, (int, float)):
        return {"height": int(value), "width": int(value)} if square else {"shortest_edge": int(value)}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"height": int(value[0]), "width": int(value[1])}
    if isinstance(value, dict) and (set(value) == {"shortest_edge"} or set(value) == {"height", "width"}):
        return {k: int(v) for k, v in value.items()}
    raise ValueError(f"The image processor's {what} is {value!r}; the ONNX backend's image preprocessing takes a "
                     "shortest edge or a height and width. Use backend='torch'.")


@dataclass(frozen=True)
class ImageProcessor:
    """CLIP-style image preprocessing (see the module docstring); the fields are transformers' settings."""

    do_convert_rgb: bool = True
    do_resize: bool = True
    size: dict[str, int] | None = None
    resample: int = 3  # PIL.Image.Resampling.BICUBIC
    do_center_crop: bool = True
    crop_size: dict[str, int] | None = None
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageProcessor:
        """From saved settings (``processor_config.json``'s ``image_processor``, a ``preprocessor_config.json``
        or a processor's ``to_dict()``); missing keys take CLIPImageProcessor's defaults. Raises ``ValueError``
        for another processor type or a setting this module does not implement (padding, non-CLIP sizes)."""
        kind = config.get("image_processor_type") or config.get("feature_extractor_type")
        if kind is not None and kind not in CLIP_PROCESSOR_TYPES:
            raise ValueError(f"The ONNX backend preprocesses images as CLIP's image processor does; this model's is "
                             f"{kind}. Use backend='torch'.")
        for key, neutral in _UNSUPPORTED.items():
            if config.get(key) not in neutral:
                raise ValueError(f"The image processor sets {key}={config[key]!r}, which the ONNX backend's image "
                                 "preprocessing does not implement. Use backend='torch'.")
        mean = config.get("image_mean", CLIP_MEAN)
        std = config.get("image_std", CLIP_STD)
        return cls(
            do_convert_rgb=bool(config.get("do_convert_rgb", True)),
            do_resize=bool(config.get("do_resize", True)),
            size=_size(config.get("size", 224), square=False, what="size"),
            resample=int(config.get("resample", 3)),
            do_center_crop=bool(config.get("do_center_crop", True)),
            crop_size=_size(config.get("crop_size", 224), square=True, what="crop_size"),
            do_rescale=bool(config.get("do_rescale", True)),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            do_normalize=bool(config.get("do_normalize", True)),
            image_mean=tuple(float(x) for x in (mean if isinstance(mean, (list, tuple)) else [mean] * 3)),
            image_std=tuple(float(x) for x in (std if isinstance(std, (list, tuple)) else [std] * 3)),
        )

    def to_config(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what an export records)."""
        return {**asdict(self), "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    # -- the steps ---------------------------------------------------------------------------------------------
    def __call__(self, images: list[Any]) -> np.ndarray:
        """``pixel_values`` ``[b, 3, H, W]`` float32 of PIL images or ``[H, W, C]`` / ``[C, H, W]`` arrays.
        Raises ``ValueError`` for an array that is no image, or images whose processed sizes differ (only
        when cropping is off)."""
        rows = [self.process(image) for image in images]
        shapes = {row.shape for row in rows}
        if len(shapes) > 1:
            raise ValueError(f"Images of this batch preprocess to different shapes {sorted(shapes)}: the processor "
                             "does not crop to one size.")
        return np.stack(rows).astype(np.float32, copy=False)

    def process(self, image: Any) -> np.ndarray:
        """One image's ``[3, H, W]`` pixel values."""
        x = self._channels_first(image)
        if self.do_resize:
            x = self._resize(x)
        if self.do_center_crop:
            x = _center_crop(x, self.crop_size["height"], self.crop_size["width"])
        if self.do_rescale:
            x = (x.astype(np.float64) * self.rescale_factor).astype(np.float32)
        if self.do_normalize:
            if not np.issubdtype(x.dtype, np.floating):
                x = x.astype(np.float32)
            mean = np.asarray(self.image_mean, dtype=x.dtype)[:, None, None]
            std = np.asarray(self.image_std, dtype=x.dtype)[:, None, None]
            x = (x - mean) / std
        return x

    def _channels_first(self, image: Any) -> np.ndarray:
        from sentencekit.pipeline.modality import is_pil_image

        if is_pil_image(image):
            if self.do_convert_rgb:
                image = _pil_to_rgb(image)
            x = np.array(image)
            return x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
        x = np.asarray(image)
        if x.ndim != 3:
            raise ValueError(f"An image array must be 3-D ([H, W, C] or [C, H, W]); got shape {x.shape}.")
        first = _channels_are_first(x)
        if self.do_convert_rgb:
            x = _array_to_rgb(np.moveaxis(x, 0, -1) if first else x)
            return np.moveaxis(x, -1, 0)
        return x if first else np.moveaxis(x, -1, 0)

    def _resize(self, x: np.ndarray) -> np.ndarray:
        from sentencekit.pipeline.modality import require_pillow

        image_module = require_pillow()
        height, width = x.shape[1:]
        if "shortest_edge" in self.size:
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.size["shortest_edge"], int(self.size["shortest_edge"] * long / short)
            new_h, new_w = (new_long, new_short) if width <= height else (new_short, new_long)
        else:
            new_h, new_w = self.size["height"], self.size["width"]
        scaled = _needs_byte_scaling(x)
        hwc = np.moveaxis(x, 0, -1)
        if scaled:
            hwc = (hwc.astype(np.float64) * 255).astype(np.float32)
        hwc = hwc[..., 0] if hwc.shape[-1] == 1 else hwc
        resized = np.array(image_module.fromarray(hwc.astype(np.uint8)).resize((new_w, new_h), resample=self.resample))
        resized = resized[..., None] if resized.ndim == 2 else resized
        out = np.moveaxis(resized, -1, 0)
        return (out.astype(np.float64) * (1 / 255)).astype(np.float32) if scaled else out


def _channels_are_first(x: np.ndarray) -> bool:
    """transformers' ``infer_channel_dimension_format`` with 1, 3 or 4 channels (ambiguous: first)."""
    channels = (1, 3, 4)
    if x.shape[0] in channels:
        return True
    if x.shape[-1] in channels:
        return False
    raise ValueError(f"Cannot tell the channels of an image array of shape {x.shape}: expected 1, 3 or 4 channels "
                     "first or last.")


def _pil_to_rgb(image: Any) -> Any:
    """transformers' ``convert_to_rgb`` for PIL: transparency composited onto white."""
    from PIL import Image

    if "A" in image.getbands() or image.info.get("transparency") is not None:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _array_to_rgb(x: np.ndarray) -> np.ndarray:
    """transformers' ``convert_to_rgb`` for a channels-last array: 1 channel repeated, 4 composited onto white."""
    channels = x.shape[-1]
    if channels == 1:
        return np.repeat(x, 3, axis=-1)
    if channels == 4:
        floating = np.issubdtype(x.dtype, np.floating)
        if floating and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(f"An RGBA float image must hold values in [0, 1]; got [{x.min()}, {x.max()}].")
        white = 1.0 if floating else 255
        alpha = x[..., 3:4] / white
        composite = alpha * x[..., :3] + (1 - alpha) * white
        return composite.astype(x.dtype) if floating else np.round(composite).astype(x.dtype)
    return x


def _needs_byte_scaling(x: np.ndarray) -> bool:
    """transformers' rule before handing an array to Pillow: bytes as they are; whole numbers in [0, 255] as
    they are; other values in [0, 1] scaled by 255 (and back after resizing); anything else refused."""
    if x.dtype == np.uint8:
        return False
    if np.allclose(x, x.astype(int)):
        if np.all(x >= 0) and np.all(x <= 255):
            return False
        raise ValueError(f"An image array holds values outside [0, 255] ([{x.min()}, {x.max()}]).")
    if np.all(x >= 0) and np.all(x <= 1):
        return True
    raise ValueError(f"A float image array must hold values in [0, 1] or whole numbers in [0, 255]; got "
                     f"[{x.min()}, {x.max()}].")


def _center_crop(x: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """transformers' ``center_crop`` of a ``[C, H, W]`` array: zero padding where the image is smaller."""
    height, width = x.shape[1:]
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    if top >= 0 and left >= 0 and top + crop_h <= height and left + crop_w <= width:
        return x[:, top:top + crop_h, left:left + crop_w]
    new_h, new_w = max(crop_h, height), max(crop_w, width)
    padded = np.zeros_like(x, shape=(x.shape[0], new_h, new_w))
    top_pad, left_pad = math.ceil((new_h - height) / 2), math.ceil((new_w - width) / 2)
    padded[:, top_pad:top_pad + height, left_pad:left_pad + width] = x
    top, left = top + top_pad, left + left_pad
    return padded[:, max(0, top):min(new_h, top + crop_h), max(0, left):min(new_w, left + crop_w)]


__all__ = ["ImageProcessor", "CLIP_MEAN", "CLIP_STD", "CLIP_PROCESSOR_TYPES"]
