"""Transfer learning offline: every backbone and width's official no-top file named with its
download address and Keras' hash (docs/BACKBONES.md and the error naming a missing file), the
hash checked when a file of that name is loaded, and the note said once when val accuracy
stays at chance while training accuracy climbs."""

from __future__ import annotations

import pytest

from cnncli.errors import InputError
from cnncli.models.backbone_files import OFFICIAL_FILES
from cnncli.models.backbones import BACKBONES, get_backbone, resolve_weights
from cnncli.training.transfer import chance_note


def test_every_backbone_width_and_size_has_its_official_file_in_the_docs(repo):
    text = (repo / "docs" / "BACKBONES.md").read_text(encoding="utf-8")
    for bb in BACKBONES.values():
        for alpha in bb.alphas:
            for size in (32, 96, 128, 160, 192, 224, 300):
                name = bb.weights_file(alpha, size)
                f = OFFICIAL_FILES.get(name)
                assert f is not None, (bb.name, alpha, size, name)  # mobilenet at 96: the 224 one
                md5 = f"`{f.md5}`" if f.md5 else "none published"
                assert f"| `{name}` | <{f.url}> | {md5} |" in text, name
    assert get_backbone("mobilenet").weights_file(1.0, 96) == "mobilenet_1_0_224_tf_no_top.h5"


def test_a_missing_file_names_its_address_and_a_wrong_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    bb = get_backbone("efficientnetb0")
    with pytest.raises(InputError) as e:
        resolve_weights(bb, None, None, 224)
    assert e.value.hint.startswith(
        "copy efficientnetb0_notop.h5 there (download it from https://storage.googleapis.com/"
        "keras-applications/efficientnetb0_notop.h5 (md5 50bc09e76180e00e4465e1a485ddc09d))"
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "efficientnetb0_notop.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 99)
    with pytest.raises(InputError) as e:
        resolve_weights(bb, None, None, 224)
    assert e.value.one_line().startswith(
        f"{tmp_path / 'models' / 'efficientnetb0_notop.h5'} is not the official "
        "efficientnetb0_notop.h5: its md5 is "
    )
    assert "Keras publishes 50bc09e76180e00e4465e1a485ddc09d" in e.value.message
    assert e.value.hint == (
        "download it again from https://storage.googleapis.com/"
        "keras-applications/efficientnetb0_notop.h5"
    )


def rows(val, acc):
    return [{"val_accuracy": v, "accuracy": a} for v, a in zip(val, acc, strict=True)]


def test_val_at_chance_while_training_climbs_is_said_with_its_likely_cause():
    stuck = rows([0.5, 0.52, 0.5, 0.5], [0.55, 0.7, 0.85, 0.95])
    note = chance_note(stuck, 0.5, random_backbone=True)
    assert note.startswith(
        "val accuracy has stayed at chance (0.50: the largest class's "
        "share) for 3 epochs while training accuracy climbed to 0.95"
    )
    assert "--weights none" in note and "official weights" in note
    assert "--augment" in chance_note(stuck, 0.5, random_backbone=False)
    assert chance_note(rows([0.5, 0.6, 0.7], [0.55, 0.7, 0.9]), 0.5, True) is None  # learning
    assert chance_note(rows([0.5, 0.5, 0.5], [0.5, 0.52, 0.55]), 0.5, True) is None  # not fitting
    assert chance_note(stuck[:2], 0.5, True) is None  # too early to tell


def test_the_note_is_said_once_during_training():
    from cnncli.training.callbacks import ChanceWatch

    said = []

    class Events:
        def note(self, text):
            said.append(text)

    watch = ChanceWatch(Events(), 0.5, random_backbone=True)
    for i, (v, a) in enumerate([(0.5, 0.6), (0.5, 0.8), (0.5, 0.9), (0.5, 0.95), (0.5, 0.99)]):
        watch.on_epoch_end(i, {"val_accuracy": v, "accuracy": a, "loss": 0.1})
    assert len(said) == 1 and said[0].startswith("val accuracy has stayed at chance")
