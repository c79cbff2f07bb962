"""Input modalities, the one home of their handling: which modality each input is (sentence-transformers 6.2's
``infer_modality`` rules), whether the model takes it, and loading media inputs for the processors.

The encode pipeline reads every call's inputs through :func:`read_inputs_by_modality` (detection and checks,
before any work) and runs each modality as its own group of batches; an engine loads a batch of media with
:func:`load_batch` and runs its processor for that modality (the torch engine: the model's Hugging Face
processor; ONNX Runtime: :class:`sentencekit.engines.image_processor.ImageProcessor`). Audio later is one more
branch in :func:`load_batch` and one more processor per engine; detection already names it.

Detection (model-families.md, section 3.2):

- a PIL image; a ``str`` that is a ``data:image/...`` URI, or an http(s) URL or an *existing* file ending in an
  image extension -> ``"image"`` (video / audio extensions and YouTube URLs -> ``"video"`` / ``"audio"``);
  a media-looking ``str`` is text when the model lacks that modality;
- a NumPy array or torch tensor: 1-2-D audio, 3-D image (``[H, W, C]`` or ``[C, H, W]``), 4-5-D video;
- ``{"image": x}`` (one key of ``text`` / ``image`` / ``audio`` / ``video``) -> that modality; several of those
  keys -> the tuple of them (one input combining modalities); ``{"role", "content"}`` dicts -> ``"message"``;
- any other ``str`` -> ``"text"``.

A batch may mix modalities: sentence-transformers turns such a batch into chat ``message`` inputs and raises
when the model has no chat template, so ``encode(["a photo", image])`` fails or works depending on where its
length-sorted batches happen to split. Here the inputs of each modality are batched together and the results
put back in input order: a CLIP-style model embeds every input on its own, so grouping changes no number.

URLs are fetched only when the model allows it (``model.allow_url_inputs = True``), with a timeout; otherwise,
and when the fetch fails (offline), a ``ValueError`` names the input. Torch-free; Pillow is imported only for
images (``pip install "sentencekit[image]"``).

>>> infer_modality("a photo of a cat"), infer_modality({"image": "data:image/png;base64,iVBO"})
('text', 'image')
>>> infer_modality("https://example.com/cat.jpg", ("text",))   # the model takes no images: text
'text'
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from sentencekit.pipeline.batching import _plain_container
from sentencekit.pipeline.postprocess import is_tensor

#: the keys of a multimodal dict input (sentence-transformers' ``MULTIMODAL_DICT_KEYS``)
MODALITY_KEYS = ("text", "image", "audio", "video")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".wmv", ".flv", ".mkv")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".flac", ".aac")
_YOUTUBE_HOSTS = ("www.youtube.com", "youtube.com", "youtu.be", "m.youtube.com")
#: a URL input is read for at most this long, and at most this many bytes
URL_TIMEOUT_S = 10.0
URL_MAX_BYTES = 64 * 2**20
#: what the model attribute that allows fetching URL inputs is called (see the module docstring)
URL_SETTING = "allow_url_inputs"

Modality = str | tuple[str, ...]


# -- detection --------------------------------------------------------------------------------------------------
def is_pil_image(x: Any) -> bool:
    """Whether ``x`` is a PIL image (without importing PIL: an image exists only once PIL is imported)."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(x, module.Image)


def _looks_like_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and " " not in text


def _url_path(text: str) -> str | None:
    try:
        return urlparse(text).path.lower()
    except ValueError:  # malformed URLs, e.g. "https://[[x]]"
        return None


def _is_media_source(text: str, extensions: tuple[str, ...]) -> bool:
    """A URL or an existing file whose name ends in one of ``extensions``."""
    if _looks_like_url(text):
        path = _url_path(text)
        return path is not None and path.endswith(extensions)
    return text.lower().endswith(extensions) and os.path.isfile(text)


def _string_modality(text: str) -> str:
    """The modality a string names by its form alone (``"text"`` when it names no media)."""
    if text.startswith("data:image/") or _is_media_source(text, IMAGE_EXTENSIONS):
        return "image"
    if _is_media_source(text, VIDEO_EXTENSIONS):
        return "video"
    if _looks_like_url(text):
        try:
            if urlparse(text).netloc in _YOUTUBE_HOSTS:
                return "video"
        except ValueError:
            pass
    if _is_media_source(text, AUDIO_EXTENSIONS):
        return "audio"
    return "text"


def _is_message(x: Any) -> bool:
    return isinstance(x, dict) and "role" in x and "content" in x


def infer_modality(item: Any, supported: Sequence[str] | None = None) -> Modality | None:
    """The modality of one input (see the module docstring), or ``None`` for something that is no input of any
    modality (``None``, a number, bytes, a nested list of non-strings): the caller reports those as a
    ``TypeError``. ``supported``: the model's modalities; a media-looking string the model cannot take is text.
    Raises ``ValueError`` for a malformed dict (``array`` without its companion key, empty, unknown keys mixed
    with modality keys)."""
    if isinstance(item, str):
        kind = _string_modality(item)
        return "text" if supported is not None and kind not in supported else kind
    if is_pil_image(item):
        return "image"
    if isinstance(item, (tuple, list)):
        if len(item) == 2 and all(isinstance(s, str) for s in item):
            return "text"  # a (text, text) pair: a cross-encoder's input
        if item and _is_message(item[0]):
            return "message"
        return None
    if isinstance(item, dict):
        return _dict_modality(item)
    if isinstance(item, np.ndarray) or is_tensor(item):
        if isinstance(item, np.ndarray) and item.dtype.kind in "USO":
            return None  # strings or objects in an array: not a signal
        ndim = item.ndim
        if ndim in (1, 2):
            return "audio"
        if ndim == 3:
            return "image"
        if ndim in (4, 5):
            return "video"
        raise ValueError(f"A {ndim}-D array is no input of any modality: 1-2-D arrays are audio, 3-D images "
                         "([H, W, C] or [C, H, W]), 4-5-D videos.")
    return None


def _dict_modality(item: dict) -> Modality | None:
    if _is_message(item):
        return "message"
    if "array" in item:
        if "sampling_rate" in item:
            return "audio"
        if "video_metadata" in item:
            return "video"
        raise ValueError(f"A dict input with 'array' also needs 'sampling_rate' (audio) or 'video_metadata' "
                         f"(video); got keys {sorted(map(str, item))}.")
    if not item:
        raise ValueError("An empty dict is no input.")
    keys = set(item)
    if not keys & set(MODALITY_KEYS):
        # {"query": text}: a routed input of a Router model, which is text
        return "text" if len(item) == 1 and isinstance(next(iter(item.values())), str) else None
    unknown = keys - set(MODALITY_KEYS)
    if unknown:
        raise ValueError(f"A multimodal dict input has keys {sorted(map(str, unknown))} besides its modality keys; "
                         f"the keys must be among {list(MODALITY_KEYS)}.")
    return next(iter(item)) if len(item) == 1 else tuple(sorted(item))


def supports(modalities: Sequence[str], modality: Modality) -> bool:
    """sentence-transformers' ``supports``: ``modality`` is listed, or it is a tuple whose parts are all
    listed and the model takes chat ``message`` inputs (which is how it combines them)."""
    if isinstance(modality, tuple):
        return modality in modalities or ("message" in modalities and all(m in modalities for m in modality))
    return modality in modalities


def _describe(modality: Modality) -> str:
    if isinstance(modality, tuple):
        return f"a combined {'+'.join(modality)} input"
    return {"message": "a chat message"}.get(modality, f"an {modality}" if modality[0] in "aeiou"
                                            else f"a {modality}")


def unsupported_error(index: int, modality: Modality, modalities: Sequence[str], what: str) -> ValueError:
    """The ``ValueError`` for input ``index`` of a modality the model does not take."""
    listed = ", ".join(modalities)
    if isinstance(modality, tuple) and all(m in modalities for m in modality):
        hint = (" This model embeds each modality on its own (a CLIP-style dual encoder): pass the parts as separate "
                "inputs; they land in one space, so their embeddings can be compared or averaged.")
    elif modality == "message":
        hint = " Chat-style inputs need a model with a chat template."
    elif modalities == ("text",) or list(modalities) == ["text"]:
        hint = " Use a model that embeds it (e.g. a CLIP model), or pass text."
    else:
        hint = ""
    if modality == "audio" and "image" in modalities:  # sentence-transformers' rule: 1-2-D arrays are audio
        hint += (" (A 1-D or 2-D array is read as audio; an image array is [height, width, channels]: give a "
                 "grayscale image its channel axis, e.g. np.stack([a, a, a], axis=-1), or pass a PIL image.)")
    return ValueError(f"{what}[{index}] is {_describe(modality)}, which this model cannot encode: its modalities "
                      f"are {listed} (model.modalities).{hint}")


# -- reading a call's inputs --------------------------------------------------------------------------------------
def _is_single(inputs: Any) -> bool:
    """sentence-transformers' rule: lists and tuples (and arrays / Series of strings, other iterables) are
    batches; a string, an image, an array of pixels or a dict is one input."""
    if isinstance(inputs, (str, dict)) or is_pil_image(inputs) or is_tensor(inputs):
        return True
    if isinstance(inputs, np.ndarray):
        return not (inputs.ndim >= 1 and inputs.dtype.kind in "USO")
    return not hasattr(inputs, "__iter__")


def as_batch(inputs: Any, what: str = "sentences") -> tuple[list[Any], bool]:
    """``(inputs as a list, was_single)`` by sentence-transformers' rule (see :func:`_is_single`), the inputs
    unchanged; ``TypeError`` for ``None`` and bytes."""
    if inputs is None:
        raise TypeError(f"{what} is None: pass a string, an image or a list of them.")
    if isinstance(inputs, (bytes, bytearray)):
        raise TypeError(f"{what} is {type(inputs).__name__}: decode it to a str first (e.g. .decode('utf-8')).")
    if _is_single(inputs):
        return [inputs], True
    return list(_plain_container(inputs, allow_pairs=False, what=what)), False


def read_inputs_by_modality(inputs: Any, modalities: Sequence[str], *, allow_urls: bool = False,
                            what: str = "sentences") -> tuple[list[Any], list[Modality] | None, bool]:
    """``(items, per-input modality or None when every input is text, was_single)`` for a model that takes
    ``modalities``. Dict inputs are unwrapped (``{"image": x}`` -> ``x``; a routed ``{"query": text}`` stays).

    Raises ``ValueError`` naming the input's index for a modality the model does not take (with the model's
    modalities), a malformed dict, an ``{"image": ...}`` value that is no image, or a URL when ``allow_urls``
    is off; ``TypeError`` naming the index for an input of no modality (``None``, bytes, numbers, nested lists).
    """
    raw, single = as_batch(inputs, what)
    items: list[Any] = []
    kinds: list[Modality] = []
    for i, item in enumerate(raw):
        try:
            kind = infer_modality(item, modalities)
        except ValueError as exc:
            raise ValueError(f"{what}[{i}]: {exc}") from None
        if kind is None or (kind == "text" and not isinstance(item, (str, dict))):
            name = "None" if item is None else type(item).__name__
            nested = " (nested lists are not accepted; flatten them first)" if isinstance(item, (list, tuple)) else ""
            raise TypeError(f"{what}[{i}] is {name}, which is no input of any modality: pass a string"
                            f"{', an image' if 'image' in modalities else ''} or a list of them{nested}.")
        if not supports(modalities, kind):
            raise unsupported_error(i, kind, tuple(modalities), what)
        value = item[kind] if isinstance(item, dict) and isinstance(kind, str) and kind in item else item
        if kind == "text" and isinstance(item, dict) and "text" in item and not isinstance(value, str):
            raise TypeError(f"{what}[{i}] is {{'text': {type(value).__name__}}}; the text must be a string.")
        if kind == "image":
            _check_image_source(value, i, allow_urls, what)
        items.append(value)
        kinds.append(kind)
    all_text = all(k == "text" for k in kinds)
    return items, (None if all_text else kinds), single


def _check_image_source(value: Any, index: int, allow_urls: bool, what: str) -> None:
    """An image input is a PIL image, a 3-D array, a data URI, an existing file or an http(s) URL (when
    allowed); raise ``ValueError`` naming the input otherwise."""
    if is_pil_image(value) or ((isinstance(value, np.ndarray) or is_tensor(value)) and value.ndim == 3):
        return
    if isinstance(value, str):
        if value.startswith("data:image/"):
            return
        if _looks_like_url(value):
            if not allow_urls:
                raise ValueError(f"{what}[{index}] is an image URL ({value[:200]}); sentencekit does not fetch URLs "
                                 f"unless asked to: set model.{URL_SETTING} = True (fetched with a "
                                 f"{URL_TIMEOUT_S:.0f} s timeout), or download the image and pass its path or a "
                                 "PIL image.")
            return
        if os.path.isfile(value):
            return
        raise ValueError(f"{what}[{index}] is given as an image ({value[:200]!r}), but it is no existing file, "
                         "data:image URI or http(s) URL.")
    shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
    raise ValueError(f"{what}[{index}] is given as an image, but is a {type(value).__name__}{shape}: pass a PIL "
                     "image, an [H, W, C] array, a file path, a data:image URI or a URL.")


def check_text_only_inputs(items: Sequence[Any], what: str = "sentences") -> None:
    """For models that take only text (their inputs already passed the text checks): ``ValueError`` for a dict
    that names another modality (``{"image": "cat.png"}``), which would otherwise pass as a routed text."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in MODALITY_KEYS[1:]:
            raise unsupported_error(i, next(iter(item)), ("text",), what)


def explain_rejected(inputs: Any, what: str = "sentences") -> None:
    """For models that take only text, whose text checks refused ``inputs`` (a ``TypeError``): raise the
    ``ValueError`` of a modality they do not take when the refused input is an image (or other media), so the
    message says what the model can do; return to let the ``TypeError`` stand otherwise."""
    candidates = [(0, inputs)] if _is_single(inputs) else None
    if candidates is None:
        try:
            candidates = list(enumerate(_plain_container(inputs, allow_pairs=False, what=what)))
        except TypeError:
            return
    for i, item in candidates:
        try:
            kind = infer_modality(item, ("text",))
        except ValueError:
            continue
        if kind is not None and kind != "text":
            raise unsupported_error(i, kind, ("text",), what)


# -- loading media ----------------------------------------------------------------------------------------------
def require_pillow() -> Any:
    """``PIL.Image``; ``ImportError`` naming the extra to install when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Image inputs need Pillow, which is not installed: pip install \"sentencekit[image]\" "
                          "(or pip install pillow).") from None
    return Image


def load_image(source: Any) -> Any:
    """One image input as its processor takes it: a PIL image or an array as given (the processor converts
    them), a tensor as a NumPy array; a path, ``data:image`` URI or URL opened as transformers' ``load_image``
    does (EXIF orientation applied, converted to RGB), so the pixels equal sentence-transformers'. Raises
    ``ValueError`` naming the source for an unreadable file, a bad data URI or a failed fetch."""
    if is_pil_image(source) or isinstance(source, np.ndarray):
        return source
    if is_tensor(source):
        return source.detach().cpu().numpy()
    image_module = require_pillow()
    from PIL import ImageOps, UnidentifiedImageError

    label = source[:60] + "..." if source.startswith("data:") else source
    try:
        if source.startswith("data:image/"):
            payload = source.split(",", 1)[1] if "," in source else ""
            image = image_module.open(io.BytesIO(base64.b64decode(payload)))
        elif _looks_like_url(source):
            image = image_module.open(io.BytesIO(fetch_url(source)))
        else:
            image = image_module.open(source)
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
    except (UnidentifiedImageError, binascii.Error, OSError) as exc:
        raise ValueError(f"The image input {label} could not be read as an image: {exc}") from None


def fetch_url(url: str) -> bytes:
    """The bytes at ``url`` (at most :data:`URL_MAX_BYTES`, :data:`URL_TIMEOUT_S` per read); ``ValueError``
    saying what failed (no network, HTTP error, timeout, too large)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            data = response.read(URL_MAX_BYTES + 1)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"Fetching the image input {url} failed ({reason}); without network access, download the "
                         "image and pass its path or a PIL image.") from None
    if len(data) > URL_MAX_BYTES:
        raise ValueError(f"The image input {url} is larger than {URL_MAX_BYTES // 2**20} MiB; download it and pass "
                         "its path.")
    return data


def load_batch(items: Sequence[Any], modality: str) -> list[Any]:
    """A batch of inputs of ``modality`` loaded for its processor. Images: :func:`load_image`. Other
    modalities have no processor yet: ``ValueError``."""
    if modality != "image":
        raise ValueError(f"No {modality} processor: sentencekit encodes text and images.")
    return [load_image(item) for item in items]


__all__ = ["infer_modality", "supports", "as_batch", "read_inputs_by_modality", "check_text_only_inputs",
           "explain_rejected", "unsupported_error", "load_image", "load_batch", "fetch_url", "require_pillow",
           "is_pil_image", "MODALITY_KEYS", "IMAGE_EXTENSIONS", "URL_SETTING"]
