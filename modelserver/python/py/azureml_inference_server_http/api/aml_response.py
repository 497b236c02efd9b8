"""AMLResponse: lets run() choose the status, headers and body of its response."""

import json


class Headers:
    """An ordered, case-insensitive multi-valued header list (like werkzeug's)."""

    def __init__(self, items=None):
        self._items = list(items or [])

    def add_header(self, name, value):
        self._items.append((str(name), str(value)))

    add = add_header

    def remove(self, name):
        low = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != low]

    def __setitem__(self, name, value):
        self.remove(name)
        self._items.append((str(name), str(value)))

    def __getitem__(self, name):
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        raise KeyError(name)

    def __delitem__(self, name):
        self.remove(name)

    def __contains__(self, name):
        low = name.lower()
        return any(k.lower() == low for k, _ in self._items)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def getlist(self, name):
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    get_all = getlist

    def items(self):
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def values(self):
        return [v for _, v in self._items]

    def to_wsgi_list(self):
        return list(self._items)

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return "Headers(%r)" % self._items


class AMLResponse:
    """A response returned as-is by the server (status, headers, body).

    ``json_str=True`` JSON-encodes ``message`` with ``application/json``; a
    ``None`` message becomes ``{}``; comma-separated header values become
    repeated headers; ``x-ms-run-function-failed`` is always set.
    """

    default_mimetype = "text/html"

    def __init__(self, message, status_code, response_headers={}, json_str=False, run_function_failed=False):
        self.status_code = int(status_code)
        self.headers = Headers()
        response_headers = response_headers or {}
        if message is None:
            self._body = b"{}"
            self.headers["Content-Type"] = "application/json"
        elif json_str:
            self._body = json.dumps(message).encode("utf-8")
            self.headers["Content-Type"] = "application/json"
        else:
            if isinstance(message, (bytes, bytearray, memoryview)):
                self._body = bytes(message)
            elif isinstance(message, str):
                self._body = message.encode("utf-8")
            else:
                self._body = json.dumps(message).encode("utf-8")
            if not any(k.lower() == "content-type" for k in response_headers):
                self.headers["Content-Type"] = "text/html; charset=utf-8"
        self.headers["x-ms-run-function-failed"] = str(bool(run_function_failed))
        for name, value in response_headers.items():
            for v in str(value).split(","):
                self.headers.add_header(name, v.strip())

    @property
    def status(self):
        return "%d" % self.status_code

    @property
    def data(self):
        return self._body

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    mimetype = content_type

    def get_data(self, as_text=False):
        return self._body.decode("utf-8") if as_text else self._body

    def set_data(self, value):
        self._body = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def __repr__(self):
        return "<AMLResponse %d>" % self.status_code
