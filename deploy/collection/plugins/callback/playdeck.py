# Playdeck callback plugin: streams every callback event of a playbook run to Playdeck.
#
# Licensed under the Apache License, Version 2.0.

from __future__ import annotations

DOCUMENTATION = r"""
name: playdeck
type: notification
short_description: Streams the run's events to Playdeck, live
description:
  - Sends every callback event (ansible-runner / AWX event shape) to Playdeck's
    C(POST /api/v1/ingest/events), so the run shows live in Playdeck's console and its history is kept
    in Playdeck's database.
  - A background thread sends gzip batches from a bounded queue, so the playbook never waits on the
    network. Failed sends are retried with backoff. After the last event the plugin waits a bounded
    time for the queue to drain; when Playdeck cannot be reached the playbook still runs to the end and
    the plugin says once what was not delivered.
  - Inside an AAP/AWX execution environment the controller's job id (C(JOB_ID)) names the job, so the
    events join the job that Playdeck's sync loop sees. They are sent as provisional, each standing in
    for the controller's own copy of the same event (from the sync or AAP's external logging), which
    replaces it when it comes, so every event is stored once.
  - Results of tasks with C(no_log) arrive censored (Ansible censors them before any callback sees them);
    the plugin also leaves out the arguments of such tasks.
requirements:
  - Enable it with C(callbacks_enabled = playdeck.live.playdeck) in ansible.cfg or
    C(ANSIBLE_CALLBACKS_ENABLED).
options:
  url:
    description: Playdeck's base URL (the events go to C(<url>/api/v1/ingest/events)).
    env: [{name: PLAYDECK_URL}]
    ini: [{section: callback_playdeck, key: url}]
  token:
    description: Playdeck's ingest token (C(PLAYDECK_INGEST_TOKEN) on the server).
    env: [{name: PLAYDECK_INGEST_TOKEN}]
    ini: [{section: callback_playdeck, key: token}]
  source:
    description:
      - Where the job runs, as Playdeck names it. C(local) for runs outside a controller; inside an
        AAP/AWX execution environment, the controller's name in Playdeck (C(aap) when unset).
    env: [{name: PLAYDECK_SOURCE}]
    ini: [{section: callback_playdeck, key: source}]
  job_id:
    description:
      - The job's id at its source. Unset, the controller's C(JOB_ID) is used inside AAP/AWX, else a
        new unique id per run.
    env: [{name: PLAYDECK_JOB_EXTERNAL_ID}]
    ini: [{section: callback_playdeck, key: job_id}]
  batch_size:
    description: Send a batch once this many events are waiting.
    type: int
    default: 200
    env: [{name: PLAYDECK_BATCH_SIZE}]
    ini: [{section: callback_playdeck, key: batch_size}]
  flush_interval_ms:
    description: Send what is waiting at least this often, in milliseconds.
    type: int
    default: 250
    env: [{name: PLAYDECK_FLUSH_INTERVAL_MS}]
    ini: [{section: callback_playdeck, key: flush_interval_ms}]
  queue_size:
    description: Events held at most while Playdeck is slow or away; further events are dropped and counted.
    type: int
    default: 20000
    env: [{name: PLAYDECK_QUEUE_SIZE}]
    ini: [{section: callback_playdeck, key: queue_size}]
  final_wait:
    description: Seconds to wait at the end of the run for the last events to be delivered.
    type: float
    default: 15
    env: [{name: PLAYDECK_FINAL_WAIT}]
    ini: [{section: callback_playdeck, key: final_wait}]
  request_timeout:
    description: Seconds one HTTP request may take.
    type: float
    default: 10
    env: [{name: PLAYDECK_REQUEST_TIMEOUT}]
    ini: [{section: callback_playdeck, key: request_timeout}]
  ca_file:
    description: A PEM file of the CA (or the certificate itself) to trust for an https url, instead of the system's roots.
    type: path
    env: [{name: PLAYDECK_CA_FILE}]
    ini: [{section: callback_playdeck, key: ca_file}]
  check_hostname:
    description: Whether the https url's host must be named in Playdeck's certificate (Playdeck's own engine turns it off for its loopback address, checking the chain against its own certificate).
    type: bool
    default: true
    env: [{name: PLAYDECK_TLS_CHECK_HOSTNAME}]
    ini: [{section: callback_playdeck, key: check_hostname}]
"""

import atexit
import collections
import datetime
import getpass
import gzip
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from ansible.plugins.callback import CallbackBase

try:  # ansible-core >= 2.19
    from ansible.module_utils._internal._json._profiles import _fallback_to_str

    _ENCODER = _fallback_to_str.Encoder
except ImportError:  # older ansible-core
    try:
        from ansible.parsing.ajson import AnsibleJSONEncoder as _ENCODER
    except ImportError:
        _ENCODER = json.JSONEncoder


def _dumps(obj):
    # The C encoder first (it takes Ansible's str subclasses as they are); Ansible's own encoder for
    # what it cannot take, such as non-string keys; text as the last resort.
    try:
        return json.dumps(obj, default=str, ensure_ascii=False)
    except Exception:
        pass
    try:
        return json.dumps(obj, cls=_ENCODER, ensure_ascii=False)
    except Exception:
        return json.dumps(str(obj), ensure_ascii=False)


def _redactions():
    # Secrets the run was handed (credentials, secret-named variables) never leave it: each, and
    # each long line of a multi-line one (a key printed by a task), longest first so a secret that
    # starts another is not replaced half-way.
    path = os.environ.get("PLAYDECK_REDACT_FILE")
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            secrets = json.load(f)
    except Exception:
        return []
    needles = set()
    for s in secrets:
        if not isinstance(s, str) or len(s) < 4:
            continue
        parts = [s] + [line.strip() for line in s.splitlines() if len(line.strip()) >= 16]
        for part in parts:
            needles.add(part)
            # As it reads inside output that shows a result as JSON (the default callback does).
            for ascii_only in (False, True):
                needles.add(json.dumps(part, ensure_ascii=ascii_only)[1:-1])
    return sorted(needles, key=len, reverse=True)


def _redact(value, needles):
    # Strings anywhere in the event, before it is encoded (so escaping cannot hide a secret and a
    # replacement cannot break the JSON).
    if isinstance(value, str):
        for needle in needles:
            if needle in value:
                value = value.replace(needle, "********")
        return value
    if isinstance(value, dict):
        return {_redact(k, needles) if isinstance(k, str) else k: _redact(v, needles) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, needles) for v in value]
    return value


def _now():
    # ansible-runner's shape: naive ISO time in UTC.
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat()


# ansible-runner's display callback (the one AWX and AAP run playbooks with) wraps each event's
# output in markers that carry the event as base64: ESC[K, then chunks each followed by ESC[<n>D,
# then ESC[K. Runner's own stdout file drops them; so does what is sent to Playdeck.
_RUNNER_MARKER = re.compile(r"\x1b\[K(?:[A-Za-z0-9+/=]+\x1b\[\d+D)+\x1b\[K")
# A marker not yet finished at the end of what was written: kept for the next event's output.
_OPEN_MARKER = re.compile(r"\x1b\[K(?:[A-Za-z0-9+/=]+(?:\x1b(?:\[(?:\d+D?)?)?)?)*\Z")


def _onlcr(stream):
    """Whether the stream is a terminal that writes each newline as CR LF (ansible-runner runs
    ansible-playbook on a pseudo-terminal, so what it records ends lines so)."""
    try:
        import termios

        fd = stream.fileno()
        if not os.isatty(fd):
            return False
        oflag = termios.tcgetattr(fd)[1]
        return bool(oflag & termios.OPOST) and bool(oflag & termios.ONLCR)
    except Exception:
        return False


class _Tee:
    """sys.stdout that also keeps what was written, so each event carries the output it caused."""

    def __init__(self, stream):
        self._stream = stream
        self.captured = []
        self._pending = ""
        self.onlcr = _onlcr(stream)

    def write(self, text):
        self.captured.append(text)
        return self._stream.write(text)

    def take(self):
        text = self._pending + "".join(self.captured)
        self.captured.clear()
        self._pending = ""
        text = _RUNNER_MARKER.sub("", text)
        unfinished = _OPEN_MARKER.search(text)
        if unfinished:
            self._pending = text[unfinished.start():]
            text = text[:unfinished.start()]
        return text

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Sender:
    """The background thread: batches from a bounded queue, gzip, retries with backoff.

    The queue is a deque the playbook's thread appends to without waking the sender for each event
    (a wake-up per event would hand the GIL back and forth thousands of times); the sender wakes
    when a batch is full or the flush interval has passed."""

    def __init__(self, url, token, source, job, batch_size, flush_interval, queue_size, timeout, ca_file=None, check_hostname=True, provisional=False):
        self.endpoint = url.rstrip("/") + "/api/v1/ingest/events"
        self.provisional = provisional
        self.context = None
        if url.startswith("https://") and (ca_file or not check_hostname):
            self.context = ssl.create_default_context(cafile=ca_file or None)
            self.context.check_hostname = bool(check_hostname)
            if ca_file:
                # The file may hold the server's own certificate rather than its CA: trust it as
                # an anchor of its own.
                self.context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        self.url = url
        self.token = token
        self.source = source
        self.job = job
        self.batch_size = max(1, batch_size)
        self.flush_interval = max(0.01, flush_interval)
        self.timeout = timeout
        self.queue = collections.deque()
        self.queue_size = max(1, queue_size)
        self.enqueued = 0
        self.dropped = 0
        self.delivered = 0
        self.refused = 0
        self.last_error = None
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.deadline = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="playdeck-sender", daemon=True)
        self.thread.start()

    def put(self, encoded_event):
        if len(self.queue) >= self.queue_size:
            self.dropped += 1
            return
        self.queue.append(encoded_event)
        self.enqueued += 1
        if len(self.queue) >= self.batch_size:
            self.wake.set()

    def close(self, wait):
        """Flushes and waits at most `wait` seconds; returns (lost, total)."""
        if not self.closing.is_set():
            self.deadline = time.monotonic() + max(0.0, wait)
            self.closing.set()
            self.wake.set()
        self.done.wait(max(0.0, wait) + 0.5)
        total = self.enqueued + self.dropped
        return total - self.delivered, total

    def _expired(self):
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _take(self):
        batch = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.popleft())
            except IndexError:
                break
        return batch

    def _run(self):
        try:
            while True:
                if len(self.queue) < self.batch_size and not self.closing.is_set():
                    self.wake.wait(self.flush_interval)
                self.wake.clear()
                while True:
                    batch = self._take()
                    if not batch:
                        break
                    if not self._send_with_retries(batch):
                        return  # the final wait is over
                    if len(batch) < self.batch_size:
                        break
                if self.closing.is_set() and not self.queue:
                    return
        finally:
            self.done.set()

    def _send_with_retries(self, batch):
        """Sends until it is delivered or refused; False once the final wait has run out."""
        body = gzip.compress(
            ('{"source":%s,"job":%s,%s"events":[%s]}' % (json.dumps(self.source), json.dumps(self.job), '"provisional":true,' if self.provisional else "", ",".join(batch))).encode("utf-8"),
            compresslevel=1,
        )
        backoff = 0.2
        while True:
            if self._expired():
                return False
            outcome = self._post(body)
            if outcome == "ok":
                self.delivered += len(batch)
                return True
            if outcome == "refused":
                # Playdeck read the batch and said no (bad token, invalid event): sending it again
                # cannot help.
                self.refused += len(batch)
                return True
            pause = backoff
            if self.deadline is not None:
                pause = min(pause, max(0.0, self.deadline - time.monotonic()))
            time.sleep(pause)
            backoff = min(backoff * 2, 5.0)

    def _post(self, body):
        req = urllib.request.Request(self.endpoint, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Content-Encoding", "gzip")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        timeout = self.timeout
        if self.deadline is not None:
            timeout = max(0.2, min(timeout, self.deadline - time.monotonic()))
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
                resp.read()
            return "ok"
        except urllib.error.HTTPError as e:
            detail = ""
            try:
                detail = json.loads(e.read().decode("utf-8", "replace"))["errors"][0]["detail"]
            except Exception:
                pass
            self.last_error = "HTTP %s%s" % (e.code, ": " + detail if detail else "")
            if e.code in (408, 429) or e.code >= 500:
                return "retry"
            return "refused"
        except Exception as e:  # connection refused, DNS, timeout, TLS
            reason = getattr(e, "reason", None) or e
            self.last_error = str(reason) or e.__class__.__name__
            return "retry"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "playdeck.live.playdeck"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._sender = None
        self._tee = None
        self._under_runner = False
        self._counter = 0
        self._line = 0
        self._playbook_uuid = str(uuid.uuid4())
        self._playbook = ""
        self._play = None
        self._task = None
        self._task_start = {}
        self._task_cache = {}
        self._finished = False
        self._final_wait = 15.0
        self._redact = _redactions()

    # ---- set-up -------------------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        url = self.get_option("url")
        if not url:
            self._display.warning("Playdeck callback: no url is configured (PLAYDECK_URL); events are not sent.")
            self.disabled = True
            return
        in_controller = bool(os.environ.get("JOB_ID"))
        # ansible-runner (which AWX and AAP run playbooks with) makes its display callback the
        # stdout callback.
        self._under_runner = os.environ.get("ANSIBLE_STDOUT_CALLBACK") == "awx_display"
        source = self.get_option("source") or ("aap" if in_controller else "local")
        job_id = self.get_option("job_id") or os.environ.get("JOB_ID") or str(uuid.uuid4())
        job = {"external_id": str(job_id)}
        standalone = not in_controller and not os.environ.get("PLAYDECK_JOB_EXTERNAL_ID") and not self.get_option("job_id")
        if standalone:
            # Nobody else names this job: say who ran it; the name comes with playbook_on_start.
            try:
                job["launched_by"] = getpass.getuser()
            except Exception:
                pass
        self._standalone = standalone
        self._final_wait = float(self.get_option("final_wait"))
        self._sender = _Sender(
            url=url,
            token=self.get_option("token"),
            source=source,
            job=job,
            batch_size=int(self.get_option("batch_size")),
            flush_interval=int(self.get_option("flush_interval_ms")) / 1000.0,
            queue_size=int(self.get_option("queue_size")),
            timeout=float(self.get_option("request_timeout")),
            ca_file=self.get_option("ca_file"),
            check_hostname=self.get_option("check_hostname"),
            provisional=in_controller,
        )
        if not isinstance(sys.stdout, _Tee):
            self._tee = _Tee(sys.stdout)
            sys.stdout = self._tee
        atexit.register(self._finish)

    # ---- events -------------------------------------------------------------------------------

    def _emit(self, event, uuid_=None, parent_uuid=None, **data):
        if self._sender is None:
            return
        stdout = self._tee.take() if self._tee is not None else ""
        if self._under_runner:
            # As ansible-runner (and so AWX) records an event's output: the bytes its terminal
            # passed on (CR LF), the lines counted as written, the trailing line ends left out.
            if self._tee is not None and self._tee.onlcr:
                stdout = stdout.replace("\n", "\r\n")
            lines = stdout.count("\n")
            stdout = stdout.rstrip("\r\n")
        else:
            # As ansible-playbook printed it: each event's output ends with the line end the
            # stdout endpoint puts back.
            if stdout.endswith("\n"):
                stdout = stdout[:-1]
            lines = stdout.count("\n") + 1 if stdout else 0
        self._counter += 1
        event_data = {"playbook": self._playbook, "playbook_uuid": self._playbook_uuid, "pid": os.getpid()}
        if self._play is not None:
            event_data["play"] = self._play[0]
            event_data["play_uuid"] = self._play[1]
            event_data["play_pattern"] = self._play[2]
        if self._task is not None and event not in ("playbook_on_play_start", "playbook_on_stats"):
            event_data.update(self._task)
        event_data.update(data)
        ev = {
            "counter": self._counter,
            "uuid": uuid_ or str(uuid.uuid4()),
            "parent_uuid": parent_uuid or "",
            "event": event,
            "created": _now(),
            "stdout": stdout,
            "start_line": self._line,
            "end_line": self._line + lines,
            "event_data": event_data,
        }
        self._line += lines
        if self._redact:
            ev = _redact(ev, self._redact)
        self._sender.put(_dumps(ev))

    def _task_fields(self, task):
        # The same task comes back for every host: describe it once.
        key = task._uuid
        cached = self._task_cache.get(key)
        if cached is not None:
            return dict(cached)
        fields = {
            "task": task.get_name().strip(),
            "task_uuid": str(task._uuid),
            "task_action": task.action,
            "resolved_action": getattr(task, "resolved_action", None) or task.action,
            "task_path": task.get_path() or "",
            "role": task._role.get_name() if getattr(task, "_role", None) else "",
        }
        if not task.no_log:
            try:
                fields["task_args"] = ", ".join("%s=%s" % (k, v) for k, v in task.args.items() if not str(k).startswith("_ansible"))
            except Exception:
                fields["task_args"] = ""
        if len(self._task_cache) > 5000:
            self._task_cache.clear()
        self._task_cache[key] = fields
        return dict(fields)

    def _result(self, event, result, **extra):
        # Ansible hands each callback its own copy of the result (censored for no_log), so it is
        # read as it is; only facts are copied, to leave out the remote environment. From 2.19 on,
        # `_result` converts the whole result to plain types for every callback; the encoder takes
        # Ansible's own types as they are, so the unconverted copy is serialised instead.
        res = getattr(result, "_return_data", None)
        if not isinstance(res, dict):
            res = result._result
        facts = res.get("ansible_facts") if isinstance(res, dict) else None
        if isinstance(facts, dict) and "ansible_env" in facts:
            res = dict(res)
            res["ansible_facts"] = {k: v for k, v in facts.items() if k != "ansible_env"}  # may hold secrets
        host = result._host.get_name()
        task = result._task
        fields = self._task_fields(task)
        started = self._task_start.get((host, fields["task_uuid"]))
        end = _now()
        data = dict(fields)
        data.update(
            host=host,
            remote_addr=result._host.address,
            res=res,
            start=started,
            end=end,
        )
        if started:
            try:
                data["duration"] = (datetime.datetime.fromisoformat(end) - datetime.datetime.fromisoformat(started)).total_seconds()
            except ValueError:
                pass
        data.update(extra)
        self._emit(event, parent_uuid=fields["task_uuid"], **data)

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)
        if self._sender is not None and self._standalone:
            self._sender.job.setdefault("name", self._playbook)
        self._emit("playbook_on_start", uuid_=self._playbook_uuid)

    def v2_playbook_on_play_start(self, play):
        self._play = (play.get_name().strip(), str(play._uuid), ", ".join(play.hosts) if isinstance(play.hosts, list) else str(play.hosts))
        self._task = None
        self._emit("playbook_on_play_start", uuid_=self._play[1], parent_uuid=self._playbook_uuid, name=self._play[0])

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task = self._task_fields(task)
        self._emit("playbook_on_task_start", uuid_=self._task["task_uuid"], parent_uuid=self._play[1] if self._play else "", is_conditional=is_conditional, name=self._task["task"])

    def v2_playbook_on_handler_task_start(self, task):
        self._task = self._task_fields(task)
        self._emit("playbook_on_handler_task_start", uuid_=self._task["task_uuid"], parent_uuid=self._play[1] if self._play else "", is_conditional=False, name=self._task["task"])

    def v2_runner_on_start(self, host, task):
        fields = self._task_fields(task)
        self._task_start[(host.get_name(), fields["task_uuid"])] = _now()
        data = dict(fields)
        data.update(host=host.get_name(), remote_addr=host.address)
        self._emit("runner_on_start", parent_uuid=fields["task_uuid"], **data)

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("runner_on_failed", result, ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._result("runner_on_skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("runner_on_unreachable", result)

    def v2_runner_on_async_poll(self, result):
        self._result("runner_on_async_poll", result)

    def v2_runner_on_async_ok(self, result):
        self._result("runner_on_async_ok", result)

    def v2_runner_on_async_failed(self, result):
        self._result("runner_on_async_failed", result)

    def v2_runner_item_on_ok(self, result):
        self._result("runner_item_on_ok", result)

    def v2_runner_item_on_failed(self, result):
        self._result("runner_item_on_failed", result)

    def v2_runner_item_on_skipped(self, result):
        self._result("runner_item_on_skipped", result)

    def v2_runner_retry(self, result):
        self._result("runner_retry", result)

    def v2_playbook_on_notify(self, handler, host):
        self._emit("playbook_on_notify", handler=handler.get_name(), host=host.get_name())

    def v2_playbook_on_include(self, included_file):
        self._emit("playbook_on_include", included=str(included_file._filename), hosts=[h.get_name() for h in included_file._hosts])

    def v2_playbook_on_no_hosts_matched(self):
        self._emit("playbook_on_no_hosts_matched")

    def v2_playbook_on_no_hosts_remaining(self):
        self._emit("playbook_on_no_hosts_remaining")

    def v2_playbook_on_stats(self, stats):
        summary = {}
        for key in ("changed", "dark", "failures", "ignored", "ok", "processed", "rescued", "skipped"):
            summary[key] = dict(getattr(stats, key, {}) or {})
        self._emit("playbook_on_stats", **summary)
        self._finish()

    def _finish(self):
        """Flushes, waits a bounded time and says once what was not delivered."""
        if self._finished or self._sender is None:
            return
        self._finished = True
        if self._tee is not None and sys.stdout is self._tee:
            sys.stdout = self._tee._stream
        lost, total = self._sender.close(self._final_wait)
        if lost > 0:
            s = self._sender
            why = s.last_error or "no answer in time"
            detail = []
            if s.dropped:
                detail.append("%d dropped because the queue was full" % s.dropped)
            if s.refused:
                detail.append("%d refused" % s.refused)
            self._display.warning(
                "Playdeck: %d of %d events of this run were not delivered to %s (%s%s); the playbook itself ran to the end, "
                "but Playdeck's record of job %s is incomplete."
                % (lost, total, s.url, why, "; " + ", ".join(detail) if detail else "", s.job.get("external_id"))
            )
