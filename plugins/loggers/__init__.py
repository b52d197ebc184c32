"""Built-in experiment loggers (``avood run --logger NAME``), registered lazily through the ``avood``
entry-point group like the components: their libraries are imported only when a run uses them."""

from avood_core.hookspecs import hookimpl


@hookimpl
def register_components(register):
    register("logger", "tensorboard", "avood_plugins.loggers.tensorboard:TensorBoardLogger")
    register("logger", "mlflow", "avood_plugins.loggers.mlflow:MLflowLogger")
