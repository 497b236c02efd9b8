"""modelship Python worker: runs an Azure ML score.py behind the Go server.

Protocol (fd 3 = requests from Go, fd 4 = frames to Go). Every frame is an
8-byte header (uint32 LE meta length, uint32 LE body length), the meta and the
raw body bytes. A request's meta is UTF-8 fields separated by NUL bytes:
request id, method, path, raw query, content type, then header name/value
pairs (only when run() needs them). Frames to Go carry a JSON meta object:
{"t": "ready", ...} once after init(), {"t": "fatal", ...} on a startup
failure, {"t": "r", "s": status, ...} per request and {"t": "c", ...} for
ModelDataCollector rows.
"""

import faulthandler
import inspect
import json
import os
import signal
import struct
import sys
import threading
import time
import traceback
import urllib.parse

import _modelship_runtime as rt

_HDR = struct.Struct("<II")
_lock = threading.Lock()
_dumps = json.dumps
_loads = json.loads
_perf = time.perf_counter_ns
_ERR_RUN = b'{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}'
# What Azure's server answers when run() returned something json.dumps cannot
# encode: its own error, outside the user's script (no x-ms-run-function-failed).
_ERR_INTERNAL = b'{"message": "An unexpected internal error occurred. Check the logs for more info."}'


_meta_encode = json.JSONEncoder(separators=(",", ":")).encode


class _ScoringTimeout(BaseException):
    """Raised inside run() when Go signals the scoring deadline (SIGALRM).

    A BaseException, so that a script's ``except Exception`` does not
    swallow it. As in Azure's server (which raises TimeoutError from a
    SIGALRM timer), the worker and its state survive: init() does not run
    again. Go kills the worker only if run() does not come back (stuck in
    C code) within a grace period.
    """


_in_run = False


def _on_alarm(signum, frame):
    if _in_run:
        raise _ScoringTimeout()


def _write_frame(meta, body=b""):
    _write_raw(_meta_encode(meta).encode(), body)


def _write_ok(ns, body):
    """Send the common 200 response (fast path, no JSON encoder)."""
    _write_raw(b'{"t":"r","s":200,"ns":%d}' % ns, body)


def _write_raw(m, body):
    data = _HDR.pack(len(m), len(body)) + m
    with _lock:
        if len(body) < 65536:
            _write_all(data + body)
        else:
            _write_all(data)
            _write_all(body)


def _write_all(data):
    view = memoryview(data)
    while view:
        n = os.write(4, view)
        view = view[n:]


class _PrefixWriter:
    """A text stream that prefixes each line with the current request id."""

    def __init__(self, raw):
        self._raw = raw
        self._pending = ""
        self._wlock = threading.Lock()
        self.encoding = getattr(raw, "encoding", "utf-8")
        self.errors = getattr(raw, "errors", "strict")

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        with self._wlock:
            text = self._pending + s
            if "\n" not in text:
                self._pending = text
                return len(s)
            *lines, self._pending = text.split("\n")
            prefix = rt.request_id + ": "
            self._raw.write("".join(prefix + line + "\n" for line in lines))
            self._raw.flush()
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        with self._wlock:
            if self._pending:
                self._raw.write(rt.request_id + ": " + self._pending + "\n")
                self._pending = ""
            self._raw.flush()

    def fileno(self):
        return self._raw.fileno()

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    @property
    def buffer(self):
        return self._raw.buffer

    def __getattr__(self, name):
        return getattr(self._raw, name)


class _BadInput(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _parse_value(text):
    try:
        return _loads(text)
    except ValueError:
        return text


def _parse_query(query):
    """Turn a query string into a dict the way Azure does (repeated keys -> lists)."""
    out = {}
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    order = []
    grouped = {}
    for k, v in pairs:
        if k not in grouped:
            grouped[k] = []
            order.append(k)
        grouped[k].append(v)
    for k in order:
        vals = grouped[k]
        out[k] = _parse_value(vals[0]) if len(vals) == 1 else [_parse_value(v) for v in vals]
    return out


def _is_json(content_type):
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


def _rawhttp_requested(run):
    if getattr(run, "_modelship_rawhttp", False):
        return True
    for name in ("azureml_inference_server_http.api.aml_request", "azureml.contrib.services.aml_request"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "_rawHttpRequested", False):
            return True
    return False


def _schema_info(run):
    """Return (decorated, input schema, output schema) from inference-schema."""
    try:
        from inference_schema import schema_util
    except Exception:
        return False, None, None
    try:
        decorated = schema_util.is_schema_decorated(run)
    except Exception:
        decorated = False
    if not decorated:
        return False, None, None
    inp = out = None
    try:
        inp = schema_util.get_input_schema(run) or None
        out = schema_util.get_output_schema(run) or None
    except Exception:
        traceback.print_exc()
    return True, inp, out


class _Worker:
    def __init__(self):
        self.rf = os.fdopen(3, "rb", buffering=1 << 16)
        self.run = None
        self.mode = "str"
        self.params = []
        self.first = None
        self.wants_headers = False

    # ---- startup -------------------------------------------------------

    def load(self, script):
        import importlib.util

        spec = importlib.util.spec_from_file_location("entry_module", script)
        if spec is None:
            raise _StartupFailure("Cannot load entry script %s (not a Python file?)" % script)
        module = importlib.util.module_from_spec(spec)
        sys.modules["entry_module"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as ex:
            raise _StartupFailure("Failed to import entry script %s: %s: %s" % (script, type(ex).__name__, ex), True)
        if not hasattr(module, "init"):
            raise _StartupFailure("Entry script %s does not have an init() function defined." % script)
        if not hasattr(module, "run"):
            raise _StartupFailure("Entry script %s does not have a run() function defined." % script)
        run = module.run
        driver = getattr(module, "driver_module", None)
        if driver is not None and hasattr(driver, "run") and inspect.ismodule(driver):
            run = driver.run
        self.init = module.init
        self.run = run
        self.analyze()

    def analyze(self):
        params = list(inspect.signature(self.run).parameters.values())
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise _StartupFailure("run() cannot accept positional-only arguments, *args, or **kwargs.")
        self.wants_headers = any(p.name == "request_headers" for p in params)
        params = [p for p in params if p.name != "request_headers"]
        if not params:
            if self.wants_headers:
                raise _StartupFailure('run() needs to accept an argument other than "request_headers".')
            raise _StartupFailure("run() needs to accept an argument for input data.")
        self.first = params[0].name
        self.params = params
        decorated, self.input_schema, self.output_schema = _schema_info(self.run)
        raw = _rawhttp_requested(self.run)
        if raw and decorated:
            raise _StartupFailure("run() cannot be decorated with both @rawhttp and @input_schema")
        self.mode = "raw" if raw else ("schema" if decorated else "str")

    def call_init(self):
        try:
            self.init()
        except BaseException as ex:
            raise _StartupFailure("init() raised %s: %s" % (type(ex).__name__, ex), True)

    # ---- requests ------------------------------------------------------

    def serve(self):
        global _in_run
        read = self.rf.read
        unpack = _HDR.unpack
        handle = self.handle
        while True:
            hdr = read(8)
            if len(hdr) < 8:
                return
            ml, bl = unpack(hdr)
            fields = read(ml).decode("utf-8", "surrogateescape").split("\0")
            body = read(bl) if bl else b""
            rt.request_id = fields[0]
            rt.request_seq += 1
            t0 = _perf()
            try:
                handle(fields, body)
            except _ScoringTimeout:
                # run() was interrupted at the deadline; the answer has not
                # been sent (the flag is cleared before any answer is).
                _in_run = False
                ns = _perf() - t0
                ms = os.environ.get("SCORING_TIMEOUT_MS", "")
                _write_frame({"t": "r", "s": 500, "f": 1, "to": 1, "ns": ns,
                              "e": "run() was interrupted at the scoring timeout (%s ms):\n%s" % (ms, traceback.format_exc())},
                             _dumps({"message": "Scoring timeout after %s ms" % ms}).encode())
            out, err = sys.stdout, sys.stderr
            if getattr(out, "_pending", True):
                out.flush()
            if getattr(err, "_pending", True):
                err.flush()

    def arguments(self, fields, body):
        method = fields[1]
        if self.mode == "str":
            if method == "GET":
                return {self.first: _dumps(_parse_query(fields[3]))}
            try:
                return {self.first: str(body, "utf-8")}
            except UnicodeDecodeError as ex:
                raise _BadInput(400, "Input cannot be decoded as UTF-8: %s" % ex)
        if self.mode == "raw":
            from azureml_inference_server_http.api.aml_request import AMLRequest

            return {self.first: AMLRequest(method, fields[2] or "/score", fields[3], _pairs(fields), body)}
        if method == "GET":
            doc = _parse_query(fields[3])
        else:
            if not _is_json(fields[4]):
                raise _BadInput(415, "Expects Content-Type to be application/json")
            try:
                doc = _loads(body)
            except ValueError as ex:
                if body:
                    raise _BadInput(400, "POST body could not be decoded as JSON: %s" % ex)
                raise _BadInput(400, "POST body is empty. Expecting a JSON dictionary.")
            if not isinstance(doc, dict):
                raise _BadInput(400, "POST body should be a JSON dictionary.")
        args = {}
        for p in self.params:
            value = doc.get(p.name, p.default)
            if value is inspect.Parameter.empty:
                raise _BadInput(400, "A value is not provided for the %r parameter." % p.name)
            args[p.name] = value
        return args

    def handle(self, fields, body):
        try:
            kwargs = self.arguments(fields, body)
        except _BadInput as ex:
            _write_frame({"t": "r", "s": ex.status}, _dumps({"message": ex.message}).encode())
            return
        if self.wants_headers:
            kwargs["request_headers"] = _headers_dict(_pairs(fields))
        global _in_run
        t0 = _perf()
        try:
            _in_run = True
            out = self.run(**kwargs)
            _in_run = False
        except Exception:
            _in_run = False
            ns = _perf() - t0
            _write_frame({"t": "r", "s": 500, "f": 1, "ns": ns, "e": traceback.format_exc()}, _ERR_RUN)
            return
        ns = _perf() - t0
        if hasattr(out, "status_code") and hasattr(out, "get_data") and hasattr(out, "headers"):
            self.send_response_object(out, ns)
            return
        try:
            data = _dumps(out).encode()
        except Exception as ex:
            msg = "run() returned a value that is not JSON serializable: %s: %s" % (type(ex).__name__, ex)
            _write_frame({"t": "r", "s": 500, "ns": ns, "e": msg}, _ERR_INTERNAL)
            return
        _write_ok(ns, data)

    def send_response_object(self, resp, ns):
        data = resp.get_data()
        if isinstance(data, str):
            data = data.encode("utf-8")
        headers = [[str(k), str(v)] for k, v in resp.headers.items()] if hasattr(resp.headers, "items") else [[str(k), str(v)] for k, v in resp.headers]
        if hasattr(resp.headers, "to_wsgi_list"):
            headers = [[str(k), str(v)] for k, v in resp.headers.to_wsgi_list()]
        _write_frame({"t": "r", "s": int(resp.status_code), "h": headers, "ns": ns, "o": 1}, bytes(data))


def _pairs(fields):
    """Header (name, value) pairs from a request's meta fields."""
    return list(zip(fields[5::2], fields[6::2]))


def _headers_dict(pairs):
    out = {}
    for k, v in pairs:
        out[k] = v if k not in out else out[k] + ", " + v
    return out


class _StartupFailure(Exception):
    def __init__(self, message, with_traceback=False):
        super().__init__(message)
        self.message = message
        self.tb = traceback.format_exc() if with_traceback else ""


def _send_collect(meta, rows_json):
    meta = dict(meta)
    meta["t"] = "c"
    meta["i"] = rt.request_id
    _write_frame(meta, rows_json)
    return True


def _setup_paths():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path.pop(0)
    front = []
    for d in (os.environ.get("AZUREML_SOURCE_DIRECTORY"), os.environ.get("AML_APP_ROOT")):
        if d and d not in front:
            front.append(d)
    sys.path[0:0] = front
    sys.path.append(here)


def main():
    # Programs score.py starts (os.system, fork+exec) must not hold the
    # protocol pipes: a pipe end held open elsewhere would keep Go waiting
    # for an answer after this worker was killed.
    os.set_inheritable(3, False)
    os.set_inheritable(4, False)
    signal.signal(signal.SIGALRM, _on_alarm)
    # A crash in native code (a segfault in a model library) leaves the
    # Python stack in the log, as Azure's server does.
    faulthandler.enable()
    sys.stdout = _PrefixWriter(sys.stdout)
    sys.stderr = _PrefixWriter(sys.stderr)
    _setup_paths()
    rt.send_collect = _send_collect
    script = os.environ.get("MODELSHIP_ENTRY_SCRIPT_PATH", "")
    worker = _Worker()
    try:
        worker.load(script)
        worker.call_init()
        # Everything init() printed goes out before the ready frame: Go
        # waits for this line on the output pipe before it reports ready.
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, b"\x1fmodelship: init output end\x1f\n")
        _write_frame(
            {
                "t": "ready",
                "mode": worker.mode,
                "headers": worker.wants_headers or worker.mode == "raw",
                "in": worker.input_schema,
                "out": worker.output_schema,
                "pid": os.getpid(),
            }
        )
    except _StartupFailure as ex:
        sys.stdout.flush()
        sys.stderr.flush()
        _write_frame({"t": "fatal", "message": ex.message, "traceback": ex.tb})
        os._exit(3)
    except BaseException as ex:
        sys.stdout.flush()
        sys.stderr.flush()
        _write_frame({"t": "fatal", "message": "worker startup failed: %s: %s" % (type(ex).__name__, ex), "traceback": traceback.format_exc()})
        os._exit(3)
    sys.stdout.flush()
    sys.stderr.flush()
    worker.serve()
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    main()
