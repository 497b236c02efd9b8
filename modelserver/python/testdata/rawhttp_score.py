import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    if request.method == "POST" and request.path.endswith("/files"):
        f = request.files["image"]
        size = len(f.read())
        f.seek(0)
        head = f.read(4)
        return {"filename": f.filename, "size": size, "field": request.form.get("note"), "tell": f.tell(),
                "head_ok": head == b"\x89PNG", "stream": len(request.stream.read()), "ua": request.user_agent.string}
    if request.method == "POST":
        body = request.get_data()
        return AMLResponse(body, 200, {"Content-Type": "application/octet-stream", "X-Multi": "a, b"})
    return {
        "method": request.method,
        "args": request.args.to_dict(flat=False),
        "full_path": request.full_path,
        "path": request.path,
        "query_string": request.query_string.decode(),
        "custom": request.headers.get("x-custom"),
        "json": request.get_json(silent=True),
    }
