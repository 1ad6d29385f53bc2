"""An iris classifier served two ways: a DataFrame API for HTTP clients and a Clipper API."""

from bentolite import Service, api, artifacts, env
from bentolite.adapters import ClipperFloatsInput, DataframeInput, JsonOutput
from bentolite.artifacts import PickleArtifact
from bentolite.exceptions import BadInput

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@env(pip_packages=["scikit-learn"])
@artifacts([PickleArtifact("model")])
class IrisClassifier(Service):
    """Predicts the iris species (0 setosa, 1 versicolor, 2 virginica) from 4 measurements."""

    # Declaring the columns and their dtype makes a malformed request (a missing column, a row
    # of 3 values, a cell "x") a 400 naming the row and column, not a failure inside the model.
    # The input's example is what the API's OpenAPI document (and Swagger's "Try it out") sends;
    # the output's is the answer the document shows.
    @api(
        input=DataframeInput(columns=FEATURES, dtype="float64", example=[[5.1, 3.5, 1.4, 0.2]]),
        output=JsonOutput(example=[0]),
    )
    def predict(self, df):
        """One species per row of sepal length, sepal width, petal length, petal width."""
        return self.artifacts.model.predict(df.to_numpy())

    @api(input=ClipperFloatsInput(example={"input": [6.5, 3.0, 5.8, 2.2]}))
    def predict_clipper(self, inputs):
        """One species per input of 4 floats (for a Clipper cluster)."""
        for i, x in enumerate(inputs):
            if len(x) != len(FEATURES):
                raise BadInput(f"input {i} has {len(x)} values; expected 4 ({', '.join(FEATURES)})")
        return self.artifacts.model.predict(inputs)
