"""The command line: every flag reaches Settings, and bad combinations are refused."""

from __future__ import annotations

import pytest

from extender import cli
from extender.core import scoring
from tests import builders


def _settings(*argv: str):
    args = cli._parser().parse_args(["serve", "--simulate-nodes", "3", *argv])
    return cli._settings(args)


def test_defaults_match_the_documented_ones():
    settings = _settings()
    assert settings.port == 8888
    assert settings.gang_timeout_seconds == 300.0
    assert settings.feasibility_cache is True
    assert settings.topology_keys == ("muster.dev/rack", "topology.kubernetes.io/zone")


def test_every_flag_reaches_the_settings():
    settings = _settings(
        "--port",
        "9999",
        "--gang-timeout",
        "12",
        "--topology-keys",
        "rack, zone",
        "--no-feasibility-cache",
        "--scoring",
        "MostAllocated",
        "--max-body-mb",
        "1",
    )
    assert settings.port == 9999
    assert settings.gang_timeout_seconds == 12.0
    assert settings.topology_keys == ("rack", "zone")
    assert settings.feasibility_cache is False
    assert settings.scoring is scoring.Strategy.MOST_ALLOCATED
    assert settings.max_body_bytes == 2**20


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--tls-cert", "c.pem"], id="certificate without key"),
        pytest.param(["--client-ca", "ca.pem"], id="client CA without TLS"),
    ],
)
def test_incomplete_tls_is_refused(argv):
    with pytest.raises(SystemExit):
        _settings(*argv)


def test_sources_are_mutually_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["serve", "--simulate-nodes", "3", "--kubeconfig", "k"])
    assert "not allowed with argument" in capsys.readouterr().err


QUEUES = builders.queue_setup(cpu=9)


def _build(*argv: str):
    args = cli._parser().parse_args(["serve", "--simulate-nodes", "3", *argv])
    return cli._build(args, cli._settings(args))


def test_queues_file_is_loaded_at_start_and_watched(tmp_path):
    path = tmp_path / "queues.yaml"
    path.write_text(QUEUES)
    built = _build("--queues", str(path))
    assert list(built.service.admission.config.cluster_queues) == ["cluster-queue"]
    assert list(built.work) == ["queues-file"]  # the file watcher runs beside the simulation


def test_an_invalid_queues_file_stops_the_server_with_the_field(tmp_path):
    path = tmp_path / "queues.yaml"
    path.write_text(QUEUES.replace("nominalQuota: 9", "nominalQuota: lots"))
    with pytest.raises(SystemExit, match=r"--queues: .*ClusterQueue cluster-queue: spec\."):
        _build("--queues", str(path))


def test_without_queues_the_simulation_needs_no_background_work():
    built = _build()
    service = built.service
    assert built.work == {} and built.closers == ()
    assert service.admission.config.cluster_queues == {}
