"""StandardPythonParameterType: plain Python samples, possibly nesting other parameter types."""

import datetime

from .abstract_parameter_type import AbstractParameterType, example_of, swagger_for_value


class StandardPythonParameterType(AbstractParameterType):
    """A parameter described by a plain Python sample (int, float, str, list, dict, date...)."""

    def __init__(self, sample_input):
        super().__init__(sample_input)
        self.sample_data_type = type(sample_input)

    def deserialize_input(self, input_data):
        sample = self.sample_input
        if isinstance(sample, dict) and isinstance(input_data, dict):
            out = dict(input_data)
            for key, sub in sample.items():
                if isinstance(sub, AbstractParameterType) and key in input_data:
                    out[key] = sub.deserialize_input(input_data[key])
            return out
        if isinstance(sample, (list, tuple)) and isinstance(input_data, list):
            if sample and any(isinstance(s, AbstractParameterType) for s in sample):
                out = []
                for i, item in enumerate(input_data):
                    sub = sample[i] if len(sample) == len(input_data) else sample[0]
                    out.append(sub.deserialize_input(item) if isinstance(sub, AbstractParameterType) else item)
                return out
            return list(input_data) if isinstance(sample, list) else tuple(input_data)
        if isinstance(sample, datetime.datetime) and isinstance(input_data, str):
            return datetime.datetime.fromisoformat(input_data.replace("Z", "+00:00"))
        if isinstance(sample, datetime.date) and not isinstance(sample, datetime.datetime) and isinstance(input_data, str):
            return datetime.date.fromisoformat(input_data)
        if isinstance(sample, datetime.time) and isinstance(input_data, str):
            return datetime.time.fromisoformat(input_data)
        if isinstance(sample, float) and isinstance(input_data, int) and not isinstance(input_data, bool):
            return float(input_data)
        return input_data

    def input_to_swagger(self):
        schema = swagger_for_value(self.sample_input)
        schema["example"] = self._example()
        return schema

    def _example(self):
        return example_of(self.sample_input)
