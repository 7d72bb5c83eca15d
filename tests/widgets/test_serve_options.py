"""The served workbench's options (``widgets/serve.py``), without a browser: what the operator types is what runs."""

from __future__ import annotations

import pytest

from workbench_widgets import serve
from workbench_widgets.serve import AccessError, ServeConfig


def test_a_misspelt_option_is_an_error_naming_it(tmp_path):
    """Ignored, ``--model-roots`` served without the root the operator meant (and its model code not allowed)."""
    config = ServeConfig.from_args(["--root", str(tmp_path), "--allow-sources"])
    assert [r.path for r in config.roots] == [tmp_path.resolve()] and config.allow_sources
    with pytest.raises(AccessError, match=r"unknown argument.*--model-roots"):
        ServeConfig.from_args(["--root", str(tmp_path), "--model-roots", str(tmp_path)])


def test_the_module_serves_the_page_at_serve_for_the_origins_given(tmp_path, monkeypatch):
    """``python -m workbench_widgets.serve`` served ``/workbench`` (the README's links say ``/serve``) and took no
    origin beyond its address: behind a proxy's host name the page could not open its websocket."""
    seen = {}
    monkeypatch.setattr(serve.pn, "serve", lambda apps, **kw: seen.update(apps=apps, **kw))
    serve.main(["--root", str(tmp_path), "--address", "0.0.0.0", "--port", "5099",
                "--allow-websocket-origin", "ml-tools.internal:5099"])
    assert list(seen["apps"]) == ["serve"] and seen["port"] == 5099 and seen["address"] == "0.0.0.0"
    assert "ml-tools.internal:5099" in seen["websocket_origin"] and "localhost:5099" in seen["websocket_origin"]
    with pytest.raises(SystemExit):  # argparse: usage and exit 2
        serve.main(["--root", str(tmp_path), "--prot", "5099"])
