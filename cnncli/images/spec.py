"""`ImageSpec`: what every image becomes (height x width pixels, a colour mode, how the aspect
ratio is kept), stored in dataset manifests and with models, and read back from them with
every value checked; and the image sizes a user gives (`--size 150x150`).

An image size is at most Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS), the
largest image Pillow decodes: a size stored in a hostile model file cannot make a command
allocate more than that for one image. Re-exported by cnncli.images, where callers find it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from PIL import Image

from cnncli.errors import UsageError

COLORS = ("rgba", "rgb", "grayscale")
FITS = ("stretch", "crop", "pad")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


@dataclass(frozen=True)
class ImageSpec:
    """What every image becomes: height x width pixels, a colour mode, and how aspect
    ratio is handled when resizing. Stored in dataset manifests and with models."""

    height: int
    width: int
    color: str = "rgb"
    fit: str = "stretch"
    dtype: str = "uint8"

    def __post_init__(self):
        if self.color not in COLORS:
            raise UsageError(
                f"unknown colour mode {shown(self.color)}", f"use one of {', '.join(COLORS)}"
            )
        if self.fit not in FITS:
            raise UsageError(f"unknown fit {shown(self.fit)}", f"use one of {', '.join(FITS)}")
        if self.height < 1 or self.width < 1:
            raise UsageError(f"image size must be positive, got {self.height}x{self.width}")
        limit = Image.MAX_IMAGE_PIXELS  # what Pillow refuses to decode, so no image needs more
        if limit and self.height * self.width > limit:
            size = f"{self.height}x{self.width}"
            pixels = self.height * self.width
            raise UsageError(
                f"image size {size if len(size) < 30 else 'of ' + shown(pixels) + ' pixels'}"
                f" is over Pillow's decompression-bomb limit of {limit:,} pixels",
                "choose a smaller image size",
            )

    @property
    def channels(self) -> int:
        return CHANNELS[self.color]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = self.channels
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ImageSpec:
        """The spec as stored (`to_dict`); a missing key or a value of the wrong type is a
        UsageError naming it (callers add which file held it)."""
        if not isinstance(d, dict):
            raise UsageError(f"the image spec {shown(d)} is not a mapping (height, width, color)")
        height, width = (_whole(d, key) for key in ("height", "width"))
        if not d.get("color") and d.get("channels") is None:
            raise UsageError("the image spec has no color (nor channels)")
        color = d.get("color") or color_for_channels(_whole(d, "channels"))
        return cls(height, width, color, d.get("fit", "stretch"), d.get("dtype", "uint8"))

    @classmethod
    def for_input_shape(cls, shape, fit: str = "stretch") -> ImageSpec:
        """The conversion a model's input shape (H, W, C) implies (for models saved elsewhere)."""
        dims = list(tuple(shape))[-3:]
        if len(dims) != 3 or any(d is None for d in dims):
            raise UsageError(
                f"the model's input shape {tuple(shape)} has no fixed height, width and channels",
                "pass the image size explicitly",
            )
        h, w, c = (int(d) for d in dims)
        return cls(height=h, width=w, color=color_for_channels(c), fit=fit)

    def describe(self) -> str:
        color = self.color if self.color == "grayscale" else self.color.upper()
        return f"{self.height}x{self.width} {color} ({self.fit})"


def _whole(d: dict, key: str) -> int:
    value = d.get(key)
    if value is None:
        raise UsageError(f"the image spec has no {key}")
    if not (isinstance(value, int) and not isinstance(value, bool)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise UsageError(f"the image {key} {shown(value)} is not a whole number")
    return int(value)


def shown(value: object, limit: int = 40) -> str:
    """repr(value) cut to `limit` characters: a value read from a file, quoted in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def color_for_channels(channels: int) -> str:
    for name, n in CHANNELS.items():
        if n == channels:
            return name
    raise UsageError(f"images with {channels} channels are not supported", "use 1, 3 or 4 channels")


def parse_size(text: str) -> tuple[int, int]:
    """'500x500' or '500' -> (height, width)."""
    t = str(text).lower().replace("×", "x").replace(",", "x").strip()
    parts = t.split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise UsageError(f"bad size {text!r}", "write it as HEIGHTxWIDTH, for example 150x150")
    return nums[0], nums[1]
