"""Fixtures for the diarization tests: the synthetic voices, rendered once per session."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from diarize_voices import Voices, render_voices

if importlib.util.find_spec("resemblyzer") is None:
    pytest.skip("the diarize extra is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Voices:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the tests need {', '.join(missing)} (scripts/install-system-deps.sh)")
    return render_voices(tmp_path_factory.mktemp("voices"))
