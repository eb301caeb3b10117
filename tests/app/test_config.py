"""The app's settings: config.toml found through EMP_TUI_CONFIG (or platformdirs), and the
order flags > environment > config.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from emp_tui.app import make_app, run_app
from emp_tui.config import (
    DEFAULT_REDIS_URL,
    AppConfig,
    ConfigError,
    config_path,
    load_app_config,
    resolve_redis_url,
    resolve_stream,
)


def test_config_path_honours_the_env_override(tmp_path: Path) -> None:
    assert config_path({"EMP_TUI_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"
    default = config_path({})
    assert default.name == "config.toml" and "emp-tui" in str(default)


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_app_config(tmp_path / "none.toml") == AppConfig()


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'redis_url = "redis://cfg:6379/1"\nwindow = "2h"\nbuffer_size = 500\n'
        'first_load = 200\ngap_threshold_ms = 2500\ntheme = "nord"\nlog_dir = "/var/log/emp"\n'
        '[keymap]\nexport = "ctrl+e"\n'
    )
    config = load_app_config(path)
    assert config.redis_url == "redis://cfg:6379/1"
    assert (config.window, config.buffer_size, config.gap_threshold_ms) == ("2h", 500, 2500)
    assert config.first_load == 200
    assert config.log_dir == "/var/log/emp"
    assert config.theme == "nord" and config.keymap == {"export": "ctrl+e"}
    assert config.path == path


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("buffer_size = 'many'", "buffer_size must be an integer"),
        ("window = 'a while'", "window must be a duration"),
        ("window = 15", "window must be a duration"),
        ("backfill = 1000", 'backfill is gone: the app opens on a time range, window = "15m"'),
        ("buffer_size = 0", "buffer_size must be at least 1"),
        ("first_load = 0", "first_load must be at least 1"),
        ("colour = 'red'", "unknown setting 'colour'"),
        ("[keymap]\nexport = 3", "[keymap]"),
        ("this is = not toml =", "config.toml"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_app_config(path)
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value).strip()


def test_redis_url_order_flag_env_config_default() -> None:
    config = AppConfig(redis_url="redis://from-config:1/0")
    env = {"REDIS_HOST": "from-env", "REDIS_PORT": "7000"}
    assert resolve_redis_url("redis://flag:1/0", config, env) == "redis://flag:1/0"
    assert resolve_redis_url(None, config, env) == "redis://from-env:7000/0"
    assert resolve_redis_url(None, config, {"REDIS_URL": "redis://u:2/0"}) == "redis://u:2/0"
    assert resolve_redis_url(None, config, {}) == "redis://from-config:1/0"
    assert resolve_redis_url(None, AppConfig(), {}) == DEFAULT_REDIS_URL
    assert resolve_stream(None, AppConfig(stream="s:cfg"), {}) == "s:cfg"
    assert resolve_stream(None, AppConfig(stream="s:cfg"), {"EMP_EVENTS_STREAM": "s:env"}) == (
        "s:env"
    )
    assert resolve_stream("s:flag", AppConfig(stream="s:cfg"), {}) == "s:flag"


def test_make_app_reads_config_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('redis_url = "redis://cfg:6379/0"\nbuffer_size = 123\ngap_threshold_ms = 900\n')
    monkeypatch.setenv("EMP_TUI_CONFIG", str(path))
    app = make_app()
    assert app.redis_url == "redis://cfg:6379/0"
    assert app.store.capacity == 123 and app.gap_ms == 900
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    assert make_app().redis_url == "redis://env:6379/0"
    assert make_app(redis_url="redis://flag:1/0").redis_url == "redis://flag:1/0"
    # --file alone reads only the files.
    assert make_app(files=[tmp_path / "x.log"]).redis_url is None


def test_run_app_reports_a_bad_config_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("buffer_size = -1\n")
    monkeypatch.setenv("EMP_TUI_CONFIG", str(path))
    code = run_app(redis_url=None, stream=None, files=[], job_id=None, query=None)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("emp-tui: ") and "buffer_size must be at least 1" in err
    assert "Traceback" not in err


async def test_theme_from_config() -> None:
    from .conftest import offline_app

    app = offline_app(config=AppConfig(theme="nord"))
    async with app.run_test(size=(80, 24)):
        assert app.theme == "nord"
