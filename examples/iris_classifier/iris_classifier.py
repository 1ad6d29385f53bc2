"""An iris classifier served two ways: a DataFrame API for HTTP clients and a Clipper API."""

from bentolite import Service, api, artifacts, env
from bentolite.adapters import ClipperFloatsInput, DataframeInput
from bentolite.artifacts import PickleArtifact


@env(pip_packages=["scikit-learn"])
@artifacts([PickleArtifact("model")])
class IrisClassifier(Service):
    """Predicts the iris species (0 setosa, 1 versicolor, 2 virginica) from 4 measurements."""

    @api(input=DataframeInput())
    def predict(self, df):
        """One species per row of sepal length, sepal width, petal length, petal width."""
        return self.artifacts.model.predict(df)

    @api(input=ClipperFloatsInput())
    def predict_clipper(self, inputs):
        """One species per input of 4 floats (for a Clipper cluster)."""
        return self.artifacts.model.predict(inputs)
