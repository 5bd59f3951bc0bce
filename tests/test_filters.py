"""The filter engine against independent references (SciPy, OpenCV) and the course's examples."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from cnncli.errors import UsageError
from cnncli.filters import (
    NAMED_KERNELS,
    correlate,
    correlate_image,
    correlation_steps,
    exact_form,
    named_kernel,
    parse_kernel,
    parse_matrix,
)

SCIPY_MODE = {"reflect": "mirror", "edge": "nearest", "zero": "constant"}
CV2_BORDER = {
    "reflect": cv2.BORDER_REFLECT_101,
    "edge": cv2.BORDER_REPLICATE,
    "zero": cv2.BORDER_CONSTANT,
}


def scipy_same(x: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """float64 'same' correlation per channel; TensorFlow anchor for even kernels."""
    x = x.astype(np.float64)
    kh, kw = kernel.shape
    # scipy centres the kernel at k//2 (origin 0); TF puts the extra padding after, i.e.
    # the anchor at (k-1)//2: shift the origin by -1 for even sizes.
    origin = (-(1 - kh % 2), -(1 - kw % 2))
    chans = x[..., None] if x.ndim == 2 else x
    out = np.stack(
        [
            ndimage.correlate(
                chans[..., c], kernel, mode=SCIPY_MODE[border], cval=0.0, origin=origin
            )
            for c in range(chans.shape[-1])
        ],
        axis=-1,
    )
    return out[..., 0] if x.ndim == 2 else out


def expected(x, kernel, border, stride=1, offset=0.0, absolute=False):
    ref = scipy_same(x, kernel, border)
    if absolute:
        ref = np.abs(ref)
    ref = np.clip(np.rint(ref + offset), 0, np.iinfo(x.dtype).max).astype(x.dtype)
    return ref[::stride, ::stride]


@pytest.mark.parametrize("name", NAMED_KERNELS)
@pytest.mark.parametrize("border", ["reflect", "edge", "zero"])
def test_named_kernels_match_scipy_on_8_and_16_bit(name, border, rng):
    kernel = named_kernel(name)
    for x in (
        rng.integers(0, 256, (23, 31, 3), dtype=np.uint8),
        rng.integers(0, 256, (17, 12), dtype=np.uint8),
        rng.integers(0, 65536, (19, 21), dtype=np.uint16),
    ):
        got = correlate_image(x, kernel, border=border)
        assert got.dtype == x.dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, expected(x, kernel, border))


@pytest.mark.parametrize("name", NAMED_KERNELS)
def test_named_kernels_match_opencv_filter2d(name, rng):
    x = rng.integers(0, 256, (40, 37, 3), dtype=np.uint8)
    kernel = named_kernel(name)
    ref = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(correlate_image(x, kernel), ref)


def test_two_threads_and_block_sizes_give_the_same_result(rng):
    x = rng.integers(0, 256, (101, 67, 3), dtype=np.uint8)
    for name in ("edge", "sharpen", "gaussian-blur", "emboss", "unsharp"):
        k = named_kernel(name)
        one = correlate_image(x, k, threads=1, block_rows=16)
        np.testing.assert_array_equal(one, correlate_image(x, k, threads=2, block_rows=7))
        np.testing.assert_array_equal(one, expected(x, k, "reflect"))


@pytest.mark.parametrize("shape", [(2, 2), (4, 4), (2, 3), (3, 2), (4, 5)])
@pytest.mark.parametrize("border", ["reflect", "edge", "zero"])
def test_even_and_odd_custom_kernels_with_tensorflow_padding(shape, border, rng):
    x = rng.integers(0, 256, (15, 18, 3), dtype=np.uint8)
    kernel = rng.integers(-3, 4, shape).astype(np.float64)
    np.testing.assert_array_equal(
        correlate_image(x, kernel, border=border), expected(x, kernel, border)
    )


def test_float_kernel_within_rounding(rng):
    x = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    kernel = rng.normal(size=(3, 3))
    assert exact_form(kernel) is None
    got = correlate_image(x, kernel).astype(int)
    assert np.abs(got - expected(x, kernel, "reflect").astype(int)).max() <= 1


NP_PAD = {"reflect": "reflect", "edge": "edge", "zero": "constant"}


def tf_same_strided(x, kernel, border, stride):
    """Independent reference: np.pad by TensorFlow's SAME rule, then windows every `stride`."""
    pads = []
    for n, k in zip(x.shape[:2], kernel.shape, strict=True):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x.astype(np.float64), pads + [(0, 0)] * (x.ndim - 2), mode=NP_PAD[border])
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel.shape, axis=(0, 1))
    res = np.einsum("ij...kl,kl->ij...", win, kernel)[::stride, ::stride]
    return np.clip(np.rint(res), 0, 255).astype(x.dtype)


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("kernel_name", ["sharpen", "box-blur", "emboss"])
@pytest.mark.parametrize("border", ["reflect", "edge", "zero"])
def test_strides_follow_tensorflow_same_rule(stride, kernel_name, border, rng):
    x = rng.integers(0, 256, (14, 17, 3), dtype=np.uint8)
    k = named_kernel(kernel_name)
    got = correlate_image(x, k, stride=stride, border=border)
    np.testing.assert_array_equal(got, tf_same_strided(x, k, border, stride))


def test_flip_is_true_convolution(rng):
    x = rng.integers(0, 256, (12, 13), dtype=np.uint8)
    k = np.array([[1.0, 2, 0], [0, 1, -1], [3, 0, 0]])
    ref = ndimage.convolve(x.astype(float), k, mode="mirror")
    np.testing.assert_array_equal(
        correlate_image(x, k, flip=True), np.clip(np.rint(ref), 0, 255).astype(np.uint8)
    )


def test_abs_and_offset(rng):
    x = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    k = named_kernel("sobel-x")
    np.testing.assert_array_equal(
        correlate_image(x, k, absolute=True), expected(x, k, "reflect", absolute=True)
    )
    np.testing.assert_array_equal(
        correlate_image(x, k, offset=128), expected(x, k, "reflect", offset=128)
    )


def test_valid_padding_on_images(rng):
    x = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    k = named_kernel("edge")
    ref = cv2.filter2D(x, -1, k)[1:-1, 1:-1]
    np.testing.assert_array_equal(correlate_image(x, k, padding="valid"), ref)


def test_kernel_larger_than_image_with_same_padding_uses_the_definition(rng):
    x = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    k = np.ones((7, 7)) / 49
    np.testing.assert_array_equal(correlate_image(x, k, border="zero"), expected(x, k, "zero"))


# -- the course's worked examples ---------------------------------------------------------

COURSE_5X5 = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]


def test_course_5x5_example_valid():
    out = correlate(np.array(COURSE_5X5), np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]]), "valid")
    assert out.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]


def test_course_3x3_with_2x2_ones_same_and_valid():
    m = np.arange(1, 10).reshape(3, 3)
    assert correlate(m, np.ones((2, 2)), "same").tolist() == [
        [12, 16, 9],
        [24, 28, 15],
        [15, 17, 9],
    ]
    assert correlate(m, np.ones((2, 2)), "valid").tolist() == [[12, 16], [24, 28]]


def test_same_padding_with_stride_follows_tensorflow():
    # tf.nn.conv2d on a 5x5 ramp with ones 2x2, stride 2, SAME: output 3x3, padding after
    m = np.arange(25.0).reshape(5, 5)
    out = correlate(m, np.ones((2, 2)), "same", stride=2)
    assert out.tolist() == [[12, 20, 13], [52, 60, 33], [41, 45, 24]]


def test_steps_show_each_multiply_and_sum():
    steps = correlation_steps(np.arange(1, 10).reshape(3, 3), np.ones((2, 2)), "valid")
    assert [s["value"] for s in steps] == [12, 16, 24, 28]
    assert steps[0]["terms"] == ["1*1", "1*2", "1*4", "1*5"]


# -- parsing --------------------------------------------------------------------------------


def test_parse_inline_file_and_named(tmp_path):
    assert parse_kernel("0,-1,0;-1,5,-1;0,-1,0").tolist() == named_kernel("sharpen").tolist()
    f = tmp_path / "k.csv"
    f.write_text("1,2\n3,4\n")
    assert parse_kernel(f).tolist() == [[1, 2], [3, 4]]
    assert parse_kernel("1 2;3 4", scale=0.5).tolist() == [[0.5, 1], [1.5, 2]]
    assert exact_form(named_kernel("box-blur"))[1] == 9


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,a;2,3", "the kernel has a value that is not a number: 'a'"),
        ("1,2;3", "the kernel's rows have different lengths (1, 2)"),
        (";", "the kernel is empty"),
        ("nosuchkernel", "unknown kernel 'nosuchkernel'"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(UsageError) as e:
        parse_kernel(text)
    assert e.value.message.startswith(message)


def test_parse_matrix_rejects_ragged():
    with pytest.raises(UsageError):
        parse_matrix("1,2,3;4,5")


@pytest.mark.parametrize(
    "mode, shape, dtype",
    [
        ("L", (70, 33), np.uint8),
        ("LA", (65, 9, 2), np.uint8),
        ("RGB", (130, 31, 3), np.uint8),
        ("RGBA", (3, 5, 4), np.uint8),
        ("I;16", (66, 17), np.uint16),
    ],
)
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_writer_round_trips_through_pillow(tmp_path, rng, mode, shape, dtype, level):
    from PIL import Image

    from cnncli.filters.png import write_png

    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    write_png(tmp_path / "t.png", arr, mode, level)
    img = Image.open(tmp_path / "t.png")
    img.load()
    assert img.mode == mode
    np.testing.assert_array_equal(np.asarray(img), arr)


@pytest.mark.parametrize(
    "ints, div",
    [
        ([[1, -2, 1], [2, 5, 2], [1, -2, 1]], 3),
        (np.ones((5, 5)), 25),
        ([[1, 2]], 5),
        ([[-1, 3, -1]], 7),
        ([[1, 2, 1]], 4),
        ([[3, -1], [1, 5]], 8),
    ],
)
def test_integer_kernels_over_a_divisor_round_like_the_definition(ints, div, rng):
    kernel = np.asarray(ints, dtype=np.float64) / div
    assert exact_form(kernel)[1] == div
    for x in (
        rng.integers(0, 256, (21, 19, 3), dtype=np.uint8),
        rng.integers(0, 65536, (13, 17), dtype=np.uint16),
    ):
        np.testing.assert_array_equal(correlate_image(x, kernel), expected(x, kernel, "reflect"))
