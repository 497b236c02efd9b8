from azureml.core import Environment, Run, Workspace
from azureml.core.model import Model
from azureml.core.webservice import AksWebservice


def init():
    pass


def lookup(*args, **kwargs):
    try:
        return Model.get_model_path(*args, **kwargs)
    except Exception as ex:
        return "%s: %s" % (type(ex).__name__, ex)


def run(data):
    try:
        Workspace.from_config()
        ws = "no error"
    except Exception as ex:
        ws = "%s: %s" % (type(ex).__name__, ex)
    Run.get_context().log("metric", 1)
    return {
        "latest": lookup("m1"),
        "v1": lookup("m1", version=1),
        "multi": lookup("m2", version=2),
        "local": lookup("local_model"),
        "missing": lookup("nope"),
        "workspace": ws,
    }
