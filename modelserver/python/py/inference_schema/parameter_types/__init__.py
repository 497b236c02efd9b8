"""Parameter types: how a JSON input is converted and described in swagger."""
