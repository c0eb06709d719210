"""A client of ``napari-vlsm serve`` that needs no torch: httpx + numpy (+ zstandard on the wire).

Importing this package must never import torch (a test checks it in a fresh interpreter): laptops
without a GPU install napari-vlsm's client side only.
"""

from .http import TOKEN_ENV, ConnectionLost, ServerError, VLSMClient, read_token
from .wire import MEDIA_TYPE, WireError, decode_array, encode_array

__all__ = ["MEDIA_TYPE", "TOKEN_ENV", "ConnectionLost", "ServerError", "VLSMClient", "WireError", "decode_array",
           "encode_array", "read_token"]
