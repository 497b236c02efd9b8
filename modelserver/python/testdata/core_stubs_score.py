# Imports an Azure ML v1 deployment notebook's score.py (or helper module)
# commonly has, and reports what each stub does when used.
import json

from azureml.core import ComputeTarget, Dataset, Datastore, Environment, Webservice, Workspace
from azureml.core.authentication import (AzureCliAuthentication, InteractiveLoginAuthentication,
                                         MsiAuthentication, ServicePrincipalAuthentication)
from azureml.core.compute import AmlCompute
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.webservice import AciWebservice
from azureml.data import FileDataset, TabularDataset
from azureml.data.dataset_factory import TabularDatasetFactory
from azureml.exceptions import AzureMLException


def init():
    pass


def _err(f):
    try:
        f()
    except AzureMLException as ex:
        return "%s: %s" % (type(ex).__name__, ex)
    return "no error"


def run(data):
    sp = ServicePrincipalAuthentication(tenant_id="t", service_principal_id="id", service_principal_password="pw")
    cd = CondaDependencies.create(pip_packages=["azureml-defaults", "inference-schema[numpy-support]"],
                                  conda_packages=["scikit-learn==1.2.1"], python_version="3.8")
    cd.add_conda_package("numpy")
    cd.add_pip_package("joblib")
    return {
        "same_webservice": Webservice is __import__("azureml.core.webservice", fromlist=["x"]).Webservice,
        "aci_is_webservice": issubclass(AciWebservice, Webservice),
        "conda_yaml": cd.serialize_to_string(),
        "conda_pip": sorted(cd.pip_packages),
        "conda_packages": sorted(cd.conda_packages),
        "sp_tenant": sp._tenant_id,
        "auth_header": _err(lambda: sp.get_authentication_header()),
        "cli": _err(lambda: AzureCliAuthentication().get_authentication_header()),
        "msi": _err(lambda: MsiAuthentication().get_token()),
        "interactive": _err(lambda: InteractiveLoginAuthentication(tenant_id="t").get_authentication_header()),
        "workspace": _err(lambda: Workspace.get("ws", auth=sp)),
        "dataset": _err(lambda: Dataset.get_by_name(None, "d")),
        "dataset_tabular": _err(lambda: Dataset.Tabular.from_delimited_files("x.csv")),
        "tabular_factory": _err(lambda: TabularDatasetFactory.from_delimited_files("x.csv")),
        "tabular_dataset": _err(lambda: TabularDataset().to_pandas_dataframe()),
        "file_dataset": _err(lambda: FileDataset().download()),
        "datastore": _err(lambda: Datastore.get(None, "store")),
        "compute": _err(lambda: ComputeTarget(None, "cpu")),
        "aml_compute": _err(lambda: AmlCompute.provisioning_configuration(vm_size="x")),
        "webservice": _err(lambda: Webservice(None, "svc")),
        "environment": Environment("env").name,
    }
