"""One exit-code rule for every command (cnncli.errors): an input the user named that is
missing or unreadable is a usage error, exit 2; and TensorFlow commands refuse what they
can before TensorFlow loads (cnncli.cli.checks, and each library function's own checks)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def kit(tmp_path_factory, tiny):
    """A dataset, a model saved as cnncli saves one, an image, and things that are not."""
    root = tmp_path_factory.mktemp("checks")
    images = tiny.make_images(root / "images", tiny.SHAPES[:2], per_class=4)
    tiny.build(images, root / "ds")
    tiny.save_with_metadata(tiny.model(2), root / "m.keras", tiny.SHAPES[:2])
    (root / "text.png").write_text("not an image")
    (root / "text.keras").write_text("not a model")
    (root / "out").mkdir()
    (root / "out" / "keep.txt").write_text("keep")
    (root / "spec.yaml").write_text("keep")
    return root


def test_mistakes_exit_2_before_tensorflow_loads(kit, fresh_cli):
    """evaluate, predict, activations, embed and summary: a missing or unreadable named
    input, an existing output, a bad option: one line, exit 2, TensorFlow never imported."""
    m, ds, img = kit / "m.keras", kit / "ds", sorted((kit / "images").rglob("*.png"))[0]
    no = kit / "none.png"
    cases = [
        (
            ["evaluate", kit / "none.keras", ds],
            f"error: model file {kit / 'none.keras'} not found: give the path of a .keras or .h5 "
            "file",
        ),
        (
            ["evaluate", m, kit / "nods"],
            f"error: dataset folder {kit / 'nods'} not found: build it with cnncli dataset build "
            "IMAGES_DIR -o DIR",
        ),
        (
            ["predict", kit / "text.keras", img],
            f"error: {kit / 'text.keras'} is not a model file (not a .keras zip archive): give a "
            "Keras model file",
        ),
        (["predict", m, img, no], f"error: {no}: file not found"),
        (["activations", m, no, "-o", kit / "a"], f"error: {no}: file not found"),
        (
            ["activations", m, img, "-o", kit / "out"],
            f"error: {kit / 'out'} already exists: choose another output or pass --overwrite",
        ),
        (["embed", m, kit / "nods", "-o", kit / "e.csv"], f"error: {kit / 'nods'}: file not found"),
        (
            ["summary", kit / "text.keras"],
            f"error: {kit / 'text.keras'} is not a model file (not a .keras zip archive): give a "
            "Keras model file",
        ),
        (
            ["summary", "--arch", "tiny", "--export", kit / "spec.yaml"],
            f"error: {kit / 'spec.yaml'} already exists: choose another output or pass --overwrite",
        ),
    ]
    results, heavy = fresh_cli([case for case, _ in cases], cwd=kit)
    for (case, line), (code, stderr) in zip(cases, results, strict=True):
        assert (code, stderr) == (2, line), case
    assert heavy == []
    assert (kit / "spec.yaml").read_text() == "keep" and not (kit / "a").exists()
    assert sorted(p.name for p in (kit / "out").iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "{m}", "{bad}"],
        ["activations", "{m}", "{bad}", "-o", "{tmp}/a"],
        ["filter", "--kernel", "sharpen", "{bad}", "--out-dir", "{tmp}"],
    ],
    ids=["predict", "activations", "filter"],
)
def test_a_named_file_that_is_not_an_image_exits_2_everywhere(cli, kit, tmp_path, command):
    """The issue's case: 'not an image' exited 2 in filter but 1 in predict and activations."""
    bad = kit / "text.png"
    args = [a.format(m=kit / "m.keras", bad=bad, tmp=tmp_path) for a in command]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {bad}: not an image, or a format cnncli cannot read")


def test_predict_skipping_an_unreadable_file_exits_2(cli, kit):
    good = sorted((kit / "images").rglob("*.png"))[0]
    result = cli("predict", kit / "m.keras", kit / "text.png", good, "--json")
    assert result.exit_code == 2
    assert [p["file"] for p in json.loads(result.stdout)["predictions"]] == [str(good)]


def test_a_path_too_long_or_looping_exits_2_in_every_command(kit, fresh_cli, tmp_path):
    """Issue 23 item 14: a name longer than NAME_MAX (255 bytes), a path longer than PATH_MAX
    or a symlink loop, as any command's input or output, is one usage line naming the
    (shortened) path and the limit, before TensorFlow loads; it was "unexpected OSError:
    File name too long" exit 1 in nine commands."""
    m, ds = kit / "m.keras", kit / "ds"
    img = sorted((kit / "images").rglob("*.png"))[0]
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    long = "a" * 300  # one name over 255 bytes
    deep = "/".join(["c" * 200] * 25)  # every name fits; the path is over 4096 bytes
    out = "b" * 250  # fits, but not the temporary name cnncli writes beside it
    cases = [
        ["dataset", "build", long, "-o", tmp_path / "d1"],
        ["dataset", "build", kit / "images", "-o", out],
        ["dataset", "build", kit / "images", "--labels", f"{long}.csv", "-o", tmp_path / "d2"],
        ["dataset", "info", long],
        ["dataset", "info", deep],
        ["dataset", "preview", long, "-o", tmp_path / "p.png"],
        ["dataset", "preview", ds, "-o", f"{long}.png"],
        ["train", long, "--arch", "tiny"],
        ["train", ds, "--arch", "tiny", "-o", long],
        ["train", ds, "--from", f"{long}.keras"],
        ["train", ds, "--spec", f"{long}.yaml"],
        ["evaluate", f"{long}.keras", ds],
        ["evaluate", m, long],
        ["evaluate", m, ds, "--confusion", f"{long}.png"],
        ["predict", m, f"{long}.png"],
        ["predict", m, img, "-o", f"{long}.csv"],
        ["summary", f"{long}.keras"],
        ["summary", "--spec", f"{long}.yaml"],
        ["summary", "--arch", "tiny", "--export", f"{long}.yaml"],
        ["activations", m, f"{long}.png"],
        ["activations", m, img, "-o", long],
        ["embed", m, long, "-o", tmp_path / "e.csv"],
        ["embed", m, ds, "-o", f"{long}.csv"],
        ["filter", f"{long}.png", "-k", "sobel-x"],
        ["filter", img, "-k", "sobel-x", "-o", f"{long}.png"],
        ["filter", img, "-k", "sobel-x", "--out-dir", long],
        ["pool", f"{long}.png"],
        ["pool", img, "-o", f"{long}.png"],
        ["export", f"{long}.keras", "-f", "onnx"],
        ["export", m, "-f", "onnx", "-o", f"{long}.onnx"],
        ["runs", long],
        ["runs", deep],
        ["report", long],
        ["report", run, "-o", long],
    ]
    results, heavy = fresh_cli(cases, cwd=tmp_path)
    for case, (code, stderr) in zip(cases, results, strict=True):
        lines = stderr.splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (case, stderr)
        assert "unexpected" not in stderr and "a" * 60 not in stderr and "c" * 60 not in stderr
        if deep in map(str, case):
            assert "path too long" in stderr and "more than the 4096 a path may have" in stderr
        else:
            assert "file name too long" in stderr and " 255 " in stderr, (case, stderr)
    assert heavy == []
    # the 250-byte output is told by its own name and how much shorter it must be
    said = results[1][1]
    assert f"beside '{out[:29]}…{out[-29:]}'" in said and "to at most 229 bytes" in said, said

    # a symlink loop: Path.exists() says False, and these said "not found"
    (tmp_path / "loop").symlink_to("loop")
    cases = [
        ["dataset", "build", kit / "images", "--labels", "loop", "-o", "d3"],
        ["dataset", "build", "loop", "-o", "d4"],
        ["dataset", "info", "loop"],
        ["predict", m, "loop"],
        ["embed", m, "loop", "-o", "e.csv"],
        ["evaluate", m, "loop"],
    ]
    results, heavy = fresh_cli(cases, tmp_path)
    assert results == [
        (
            2,
            "error: cannot open 'loop': too many levels of symbolic links: "
            "a link points back to itself, or a chain of more than 40: point it "
            "at a real file",
        )
    ] * len(cases)
    assert heavy == []


def test_the_room_told_for_names_made_beside_an_output_covers_them():
    """path_error tells how much shorter an output name must be from DERIVED_NAME_ROOM: the
    temporary, partial, old and scratch names (with a 7-digit pid) and the lock fit in it."""
    import os
    from pathlib import Path

    from cnncli.atomic import KINDS, temp_path
    from cnncli.claims import lock_path
    from cnncli.errors import DERIVED_NAME_ROOM

    made = [temp_path(Path("x"), kind).name.replace(str(os.getpid()), "9" * 7) for kind in KINDS]
    made.append(lock_path("x").name)
    assert max(len(name) - 1 for name in made) == DERIVED_NAME_ROOM
