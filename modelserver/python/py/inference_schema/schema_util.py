"""Read the schemas attached by @input_schema / @output_schema."""

from .schema_decorators import SCHEMA_ATTR


def is_schema_decorated(func):
    """True when func carries an input or output schema."""
    schema = getattr(func, SCHEMA_ATTR, None)
    return bool(schema and (schema["inputs"] or schema["output"] is not None))


def get_input_schema(func):
    """Swagger schema of the inputs: an object keyed by parameter name, with an example."""
    schema = getattr(func, SCHEMA_ATTR, None)
    if not schema or not schema["inputs"]:
        return {}
    props, example, required = {}, {}, []
    for name, (ptype, optional) in schema["inputs"].items():
        sub = ptype.input_to_swagger()
        example[name] = sub.pop("example", None)
        props[name] = sub
        if not optional:
            required.append(name)
    out = {"type": "object", "properties": props, "example": example}
    if required:
        out["required"] = required
    return out


def get_output_schema(func):
    """Swagger schema of the output, with an example."""
    schema = getattr(func, SCHEMA_ATTR, None)
    if not schema or schema["output"] is None:
        return {}
    return schema["output"].input_to_swagger()


def get_supported_versions(func):
    return ["2.0", "3.0", "3.1"]
