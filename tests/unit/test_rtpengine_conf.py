"""stack.write_rtpengine_conf: where the private rtpengine keeps its sessions (the proxy's
Redis, database VPBX_RTPE_REDIS_DB), in a file only the owner reads."""
import stat

import pytest

from vpbx.tooling import stack


def written(tmp_path, **env):
    cfg = stack.Config.from_env({"VPBX_VAR": str(tmp_path), **env})
    (tmp_path / "run").mkdir(exist_ok=True)
    stack.write_rtpengine_conf(cfg)
    path = tmp_path / "run" / "rtpengine.conf"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [argv] = [argv for name, argv, *_ in stack.daemons(cfg) if name == "rtpengine"]
    assert f"--config-file={path}" in argv
    return path.read_text(), argv


def redis_lines(text):
    return [line for line in text.splitlines() if line.startswith("redis =")]


def test_the_private_redis_with_its_own_database(tmp_path):
    text, _ = written(tmp_path, VPBX_REDIS_PORT="16400")
    assert text.startswith((stack.ROOT / "rtpengine" / "rtpengine.conf").read_text())
    assert redis_lines(text) == ["redis = 127.0.0.1:16400/1"]


def test_a_password_stays_off_the_command_line(tmp_path):
    text, argv = written(tmp_path, VPBX_REDIS_URL="redis://:hunter2@10.0.0.2:6380/3",
                         VPBX_RTPE_REDIS_DB="5")
    assert redis_lines(text) == ["redis = hunter2@10.0.0.2:6380/5"]
    assert not any("hunter2" in arg for arg in argv)
    text, _ = written(tmp_path, VPBX_REDIS_URL="redis://default:pw@10.0.0.2")
    assert redis_lines(text) == ["redis = pw@10.0.0.2:6379/1"]


def test_a_redis_user_rtpengine_cannot_log_in_as_is_refused(tmp_path):
    with pytest.raises(stack.StackError, match="other than 'default'"):
        written(tmp_path, VPBX_REDIS_URL="redis://vpbx:pw@10.0.0.2:6380/0")


def test_off_keeps_no_sessions(tmp_path):
    text, _ = written(tmp_path, VPBX_RTPE_REDIS_DB="off",
                      VPBX_REDIS_URL="redis://vpbx:pw@10.0.0.2:6380/0")   # no login needed
    assert redis_lines(text) == []
