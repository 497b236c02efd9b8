# ModelDataCollector for every designation; the request body says which to call.
from azureml.monitoring import ModelDataCollector


def init():
    global dcs
    dcs = {d: ModelDataCollector("m", designation=d, feature_names=["x"])
           for d in ("inputs", "predictions", "labels", "signals", "general")}


def run(data):
    # data is "designation,designation,..."; returns the id each collect() returned.
    return [dcs[d].collect([[i]]) for i, d in enumerate(data.split(","))]
