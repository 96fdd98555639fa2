"""Three services, one agent each, that do what real ones do: refuse work out of order.

A schema or a user can only be created in a database that exists, a certificate only for a
bucket and a database that exist; each service returns what it made (a bucket's ARN, a
database's connection string, a certificate's serial) as the task's output. `fail` scripts
refusals: the next task of a verb fails with the next message listed for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statemachines import HostResult, HostStatus, TaskRejected, TaskReport

Handler = Callable[[Mapping[str, Any], str], Any]


class Refused(Exception):
    """The service refused the work; its words are the task's message."""


@dataclass
class ServiceHost:
    """An agent serving `handlers` (verb -> what doing it returns).

    Its tasks end at the poll after their start.
    """

    name: str
    handlers: dict[str, Handler]
    fail: dict[str, list[str]] = field(default_factory=dict)
    reports: dict[str, TaskReport] = field(default_factory=dict)
    started: list[tuple[str, str]] = field(default_factory=list)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        if task_id in self.reports:
            return
        handler = self.handlers.get(verb)
        if handler is None:
            raise TaskRejected(f"{self.name} has no verb {verb!r}")
        self.started.append((verb, task_id))
        scripted = self.fail.get(verb)
        if scripted:
            self.reports[task_id] = TaskReport(HostStatus.FINISHED, HostResult.FAILURE,
                                               scripted.pop(0))
            return
        try:
            output = handler(parameters, task_id)
        except Refused as err:
            self.reports[task_id] = TaskReport(HostStatus.FINISHED, HostResult.FAILURE,
                                               str(err))
        else:
            self.reports[task_id] = TaskReport(HostStatus.FINISHED, HostResult.SUCCESS,
                                               output=output)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        return {i: self.reports[i] for i in task_ids if i in self.reports}

    def clear(self, task_id: str) -> None:
        """Forget the report; what the task did stays done."""
        self.reports.pop(task_id, None)


@dataclass
class TenantHosts:
    """The object store, the database server and the certificate authority, as agents."""

    buckets: dict[str, str] = field(default_factory=dict)  # name -> ARN
    databases: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)  # serial -> subject
    fail: dict[str, list[str]] = field(default_factory=dict)

    def agents(self) -> dict[str, ServiceHost]:
        return {
            "objects": ServiceHost("objects", {"create_bucket": self._create_bucket,
                                               "delete_bucket": self._delete_bucket},
                                   self.fail),
            "postgres": ServiceHost("postgres", {
                "create_database": self._create_database, "drop_database": self._drop_database,
                "create_schema": self._create_schema, "drop_schema": self._drop_schema,
                "create_user": self._create_user, "drop_user": self._drop_user}, self.fail),
            "pki": ServiceHost("pki", {"issue_certificate": self._issue,
                                       "revoke_certificate": self._revoke}, self.fail),
        }

    def left(self) -> list[str]:
        """Everything the services hold: what a failed onboarding must leave none of."""
        found = [f"bucket:{b}" for b in self.buckets]
        for name, parts in self.databases.items():
            found += [f"database:{name}", *(f"schema:{name}.{s}" for s in parts["schemas"]),
                      *(f"db_user:{name}.{u}" for u in parts["users"])]
        return found + [f"certificate:{s}" for s in self.certificates]

    # -- the object store ---------------------------------------------------------------
    def _create_bucket(self, p: Mapping[str, Any], task_id: str) -> Any:
        name = str(p["bucket"])
        self.buckets.setdefault(name, f"arn:objects:::{name}")
        return {"arn": self.buckets[name]}

    def _delete_bucket(self, p: Mapping[str, Any], task_id: str) -> Any:
        self.buckets.pop(str(p["bucket"]), None)
        return None

    # -- the database server ------------------------------------------------------------
    def _create_database(self, p: Mapping[str, Any], task_id: str) -> Any:
        name = str(p["database"])
        self.databases.setdefault(name, {"schemas": set(), "users": set()})
        return {"dsn": f"postgresql://db.internal:5432/{name}"}

    def _drop_database(self, p: Mapping[str, Any], task_id: str) -> Any:
        parts = self.databases.get(str(p["database"]))
        if parts is not None and (parts["schemas"] or parts["users"]):
            raise Refused(f"database {p['database']} is not empty")
        self.databases.pop(str(p["database"]), None)
        return None

    def _in(self, p: Mapping[str, Any]) -> dict[str, set[str]]:
        parts = self.databases.get(str(p["database"]))
        if parts is None:
            raise Refused(f"database {p['database']} does not exist")
        return parts

    def _create_schema(self, p: Mapping[str, Any], task_id: str) -> Any:
        self._in(p)["schemas"].add(str(p["schema"]))
        return None

    def _drop_schema(self, p: Mapping[str, Any], task_id: str) -> Any:
        self.databases.get(str(p["database"]), {"schemas": set()})["schemas"].discard(
            str(p["schema"]))
        return None

    def _create_user(self, p: Mapping[str, Any], task_id: str) -> Any:
        self._in(p)["users"].add(str(p["user"]))
        return {"role": f"{p['database']}_{p['user']}"}

    def _drop_user(self, p: Mapping[str, Any], task_id: str) -> Any:
        self.databases.get(str(p["database"]), {"users": set()})["users"].discard(
            str(p["user"]))
        return None

    # -- the certificate authority ------------------------------------------------------
    def _issue(self, p: Mapping[str, Any], task_id: str) -> Any:
        if str(p["bucket_arn"]).split(":::")[-1] not in self.buckets:
            raise Refused(f"no bucket behind {p['bucket_arn']}")
        if str(p["dsn"]).rsplit("/", 1)[-1] not in self.databases:
            raise Refused(f"no database behind {p['dsn']}")
        serial = hashlib.sha256(task_id.encode()).hexdigest()[:16]
        self.certificates[serial] = str(p["subject"])
        return {"serial": serial}

    def _revoke(self, p: Mapping[str, Any], task_id: str) -> Any:
        """By subject: a certificate whose issue was lost has no serial anyone knows."""
        for serial in [s for s, subject in self.certificates.items() if subject == p["subject"]]:
            del self.certificates[serial]
        return None
