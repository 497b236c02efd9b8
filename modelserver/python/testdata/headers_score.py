from azureml_inference_server_http.api.aml_response import AMLResponse


def init():
    pass


def run(data, request_headers):
    if data == "fail":
        return AMLResponse("backend down", 503)
    if data == "none":
        return AMLResponse(None, 201, {"X-Extra": "1"})
    return {"data": data, "custom": request_headers.get("X-Custom")}
