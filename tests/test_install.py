"""Where CI runs (CI=true), everything the tests need is installed by the README's install lines: a test that would
skip for a missing package fails here instead, so a green CI cannot hide a missing install step."""
from __future__ import annotations

import importlib.util
import os

import pytest

NEEDED = ["torch", "mlx.core", "matplotlib", "transformers", "mlx_lm", "mlx_vlm", "mlx_audio", "mlx_embeddings",
          "mlxim"]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only where CI runs")
@pytest.mark.parametrize("module", NEEDED)
def test_everything_the_tests_need_is_installed(module):
    assert importlib.util.find_spec(module) is not None, f"{module} is not installed: the README's install lines miss it"
