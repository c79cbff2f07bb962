"""Image inputs of the embeddings route (``"modality": "image"``, as Infinity takes them): ``data:image/...;base64``
URIs, and http(s) URLs only on a server started with ``--allow-url-inputs true``. Each request's images are
decoded before they join a batch, so a bad image answers 422 to its own request and never fails a batch shared
with others.

>>> check_sources(["data:image/png;base64,iVBO"], "input", allow_urls=False)
['data:image/png;base64,iVBO']
"""

from __future__ import annotations

from typing import Any

from sentencekit.serve.http_errors import ApiError


def check_sources(inputs: Any, param: str, *, allow_urls: bool) -> list[str]:
    """The image sources of a request (one string or a list of strings); 422 naming the input for anything
    else, for a URL without ``--allow-url-inputs``, and for token ids."""
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ApiError(422, f"{param}[{i}] is {type(item).__name__}; with \"modality\": \"image\" send "
                                "data:image/...;base64,... URIs", "Validation", param=param)
        if item.startswith("data:image/"):
            continue
        if item.startswith(("http://", "https://")):
            if allow_urls:
                continue
            raise ApiError(422, f"{param}[{i}] is a URL ({item[:100]}); this server does not fetch URLs: send the "
                                "image as a data:image/...;base64,... URI, or start the server with "
                                "--allow-url-inputs true", "Validation", param=param)
        raise ApiError(422, f"{param}[{i}] ({item[:60]!r}) is no data:image/...;base64,... URI"
                            f"{' or http(s) URL' if allow_urls else ''}", "Validation", param=param)
    return items


def decode_images(sources: list[str], param: str) -> list[Any]:
    """PIL images of ``sources`` (run in a thread: decoding and fetching block); 422 naming the input that is
    no readable image or could not be fetched."""
    from sentencekit.pipeline.modality import load_image

    images = []
    for i, source in enumerate(sources):
        try:
            images.append(load_image(source))
        except (ValueError, ImportError) as exc:
            raise ApiError(422, f"{param}[{i}]: {exc}", "Validation", param=param) from None
    return images
