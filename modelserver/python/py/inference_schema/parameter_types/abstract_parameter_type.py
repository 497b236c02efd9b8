"""Base class of all parameter types."""

import datetime
import json


class AbstractParameterType:
    """A sample-based description of one run() input or output."""

    def __init__(self, sample_input):
        self.sample_input = sample_input

    def deserialize_input(self, input_data):
        """Convert a JSON-decoded value to the sample's type."""
        raise NotImplementedError

    def input_to_swagger(self):
        """Return the swagger schema of this type, with the sample as example."""
        raise NotImplementedError

    def supported_versions(self):
        return ["2.0", "3.0", "3.1"]


def require(module, type_name):
    """Import an optional dependency or raise a clear error naming the type."""
    try:
        return __import__(module)
    except ImportError as ex:
        raise ImportError(
            "%s needs the '%s' package, which is not installed in this worker's Python. Install it, or point "
            "modelship at a Python that has it (--python / MODELSHIP_PYTHON)." % (type_name, module)
        ) from ex


def swagger_for_value(value):
    """Swagger schema of a plain Python value (recursing into lists and dicts)."""
    if isinstance(value, AbstractParameterType):
        return value.input_to_swagger()
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer", "format": "int64"}
    if isinstance(value, float):
        return {"type": "number", "format": "double"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, (bytes, bytearray)):
        return {"type": "string", "format": "byte"}
    if isinstance(value, datetime.datetime):
        return {"type": "string", "format": "date-time"}
    if isinstance(value, datetime.date):
        return {"type": "string", "format": "date"}
    if isinstance(value, datetime.time):
        return {"type": "string", "format": "time"}
    if isinstance(value, (list, tuple)):
        schema = {"type": "array"}
        schema["items"] = swagger_for_value(value[0]) if value else {}
        return schema
    if isinstance(value, dict):
        return {"type": "object", "properties": {str(k): swagger_for_value(v) for k, v in value.items()}}
    if value is None:
        return {"type": "object"}
    if hasattr(value, "tolist"):
        return swagger_for_value(value.tolist())
    return {"type": "object"}


def example_of(value):
    """A JSON-safe example for a sample value."""
    if isinstance(value, AbstractParameterType):
        return value._example()
    if isinstance(value, dict):
        return {str(k): example_of(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [example_of(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)
