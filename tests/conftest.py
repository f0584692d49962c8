"""Session fixtures: the rendered test audio and the real ``base`` model, each made once."""

from __future__ import annotations

import shutil

import pytest

from rendered_audio import TOOLS, Audio, render_audio


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    """Every clip of ``rendered_audio.Audio``, rendered into a session temp folder."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the tests need {', '.join(missing)} (scripts/install-system-deps.sh)")
    return render_audio(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="session")
def model():
    """The real multilingual ``base`` model from the default cache, loaded once."""
    import malsori

    return malsori.load_model("base", threads=2)
