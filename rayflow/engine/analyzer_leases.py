"""Leases on persistent analyzers, so a run retires the ones it does not use without
killing one that another run is using.

With ``--address`` the analyzers are detached actors that outlive a run (warm for the
next). A run that starts with other settings gets new ones; the old ones would hold their
GPUs forever and the new ones would wait for them. So before starting its analyzers a run
kills the persistent analyzers it does not use (``fleet_rules.to_retire``), except those a
live lease says are in use.

Leases live in one small detached actor on the head node (``rayflow-leases``): a run takes
a lease on each analyzer it uses *before* creating it (so a run starting beside it sees it
in use even while its models still load) and renews it every ``RENEW_S`` from a daemon
thread; a lease lapses ``LEASE_S`` after its last renewal, so a driver that died holds
nothing for long. Each analyzer also reports there when its process starts (placed), which
tells a waiting analyzer (no GPU free) from one loading its models.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import ray

from rayflow.engine.fleet_rules import NAMESPACE, PREFIX, Retire, parse_name, to_retire

log = logging.getLogger(__name__)

BOARD_NAME = "rayflow-leases"
LEASE_S = 90.0
"""A lease not renewed for this long has lapsed (its run's driver died)."""
RENEW_S = 15.0


class LeaseBoard:
    """Who uses which persistent analyzer (name -> holder -> lapses at, on this actor's clock)
    and which analyzers' processes have started."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, float]] = {}
        self.placed: set[str] = set()

    def take(self, holder: str, names: list[str], ttl_s: float) -> None:
        until = time.time() + ttl_s
        for name in names:
            self.leases.setdefault(name, {})[holder] = until

    def drop(self, holder: str, names: list[str] | None = None) -> None:
        for name, held in self.leases.items():
            if names is None or name in names:
                held.pop(holder, None)

    def holders(self, names: list[str]) -> dict[str, list[str]]:
        now = time.time()
        return {name: sorted(h for h, until in self.leases.get(name, {}).items() if until > now) for name in names}

    def mark_placed(self, name: str) -> None:
        self.placed.add(name)

    def placed_of(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self.placed]

    def forget(self, names: list[str]) -> None:
        """``names`` were killed: a new actor of the same name starts unplaced and unleased."""
        for name in names:
            self.placed.discard(name)
            self.leases.pop(name, None)


def holder_id() -> str:
    """Who holds a lease, as error messages name it: this driver's host, pid and a nonce."""
    return f"run on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:6]})"


class Leases:
    """This run's side: takes, renews and drops its leases, and retires unused analyzers."""

    def __init__(self) -> None:
        self.holder = holder_id()
        # On the head node, which lives as long as the cluster; restarted if it dies (its
        # leases are then taken again at the next renewal).
        self.board: Any = ray.remote(LeaseBoard).options(
            name=BOARD_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            num_cpus=0, resources={"node:__internal_head__": 0.001}, max_restarts=-1,
        ).remote()
        self.names: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, names: list[str]) -> None:
        self.names.extend(n for n in names if n not in self.names)
        ray.get(self.board.take.remote(self.holder, names, LEASE_S), timeout=60)
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew, name="rayflow-leases", daemon=True)
            self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                ray.get(self.board.take.remote(self.holder, list(self.names), LEASE_S), timeout=30)
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; never kill the run
                log.warning("could not renew the analyzer leases: %s", exc)

    def release(self, names: list[str] | None = None) -> None:
        """Drop the leases on ``names`` (all of this run's when None); at the end, stop renewing."""
        if names is None:
            self._stop.set()
        self.names = [] if names is None else [n for n in self.names if n not in names]
        try:
            ray.get(self.board.drop.remote(self.holder, names), timeout=30)
        except ray.exceptions.RayError as exc:
            log.warning("could not drop the analyzer leases (they lapse in %g s): %s", LEASE_S, exc)

    def holders(self, names: list[str]) -> dict[str, list[str]]:
        """Other runs holding a live lease on each of ``names``."""
        held: dict[str, list[str]] = ray.get(self.board.holders.remote(names), timeout=60)
        return {name: [h for h in runs if h != self.holder] for name, runs in held.items()}

    def placed(self, names: list[str]) -> set[str]:
        return set(ray.get(self.board.placed_of.remote(names), timeout=30))

    def retire_unused(self, key: str, keep: int) -> Retire:
        """Kill the persistent analyzers this run does not use (``fleet_rules.to_retire``)."""
        names = _analyzers()
        retire = to_retire(names, key, keep, self.holders(names) if names else {})
        self.kill(list(retire.kill))
        for name, runs in retire.in_use.items():
            log.warning("analyzer %s (other settings) is in use by %s: left running; new analyzers may "
                        "wait for the GPUs it holds", name, ", ".join(runs))
        return retire

    def others_in_use(self, key: str) -> dict[str, list[str]]:
        """Persistent analyzers of other settings than ``key`` that another run holds."""
        names = [n for n in _analyzers() if (parsed := parse_name(n)) is not None and parsed[0] != key]
        return {name: runs for name, runs in (self.holders(names) if names else {}).items() if runs}

    def kill(self, names: list[str]) -> None:
        for name in names:
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            except ValueError:  # gone meanwhile
                continue
            log.info("retired analyzer %s", name)
        if names:
            try:
                ray.get(self.board.forget.remote(names), timeout=30)
            except ray.exceptions.RayError as exc:  # its marks only make a new actor of that name look placed
                log.warning("could not clear the leases of retired analyzers: %s", exc)


def _analyzers() -> list[str]:
    """Names of the persistent rayflow analyzers on the cluster (alive, pending or restarting)."""
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIX)]
