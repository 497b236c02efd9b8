"""@input_schema and @output_schema, as in the inference-schema package."""

import functools
import inspect

from .parameter_types.abstract_parameter_type import AbstractParameterType

SCHEMA_ATTR = "_modelship_schema"


def _schema_of(func):
    current = getattr(func, SCHEMA_ATTR, None) or {"inputs": {}, "output": None}
    return {"inputs": dict(current["inputs"]), "output": current["output"]}


def input_schema(param_name, param_type, convert_to_provided_type=True, optional=False):
    """Declare run()'s input ``param_name``; the JSON value is converted with ``param_type``."""
    if not isinstance(param_type, AbstractParameterType):
        raise ValueError("Invalid parameter type provided, must be a subclass of AbstractParameterType")

    def decorator(func):
        sig_params = list(inspect.signature(func).parameters)
        if param_name not in sig_params:
            raise ValueError("Provided param_name %r is not a parameter of %s" % (param_name, func.__name__))
        index = sig_params.index(param_name)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if convert_to_provided_type:
                if param_name in kwargs:
                    value = kwargs[param_name]
                    if not (optional and value is None):
                        kwargs[param_name] = param_type.deserialize_input(value)
                elif index < len(args):
                    args = list(args)
                    if not (optional and args[index] is None):
                        args[index] = param_type.deserialize_input(args[index])
            return func(*args, **kwargs)

        schema = _schema_of(func)
        schema["inputs"] = dict([(param_name, (param_type, optional))] + list(schema["inputs"].items()))
        setattr(wrapper, SCHEMA_ATTR, schema)
        return wrapper

    return decorator


def output_schema(output_type):
    """Declare run()'s output (for swagger only; the value is not converted)."""
    if not isinstance(output_type, AbstractParameterType):
        raise ValueError("Invalid parameter type provided, must be a subclass of AbstractParameterType")

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        schema = _schema_of(func)
        schema["output"] = output_type
        setattr(wrapper, SCHEMA_ATTR, schema)
        return wrapper

    return decorator
