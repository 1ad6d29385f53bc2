"""Train an SVM on the iris data set, pack it into IrisClassifier and save a bundle.

python train.py                     # train, pack and save a bundle to the store
python train.py --export model.pkl  # train and write the model file bentofile.yaml names
                                    # (then `bentolite build` packs it)
"""

import argparse
import pickle

from iris_classifier import IrisClassifier
from sklearn import datasets, svm


def train():
    iris = datasets.load_iris()
    clf = svm.SVC(gamma="scale")
    clf.fit(iris.data, iris.target)
    return clf, iris


def export(path: str) -> str:
    """Write the trained model with pickle, the format PickleArtifact loads."""
    clf, _ = train()
    with open(path, "wb") as f:
        pickle.dump(clf, f)
    print(f"Wrote the model to {path}")
    return path


def main() -> str:
    clf, iris = train()
    svc = IrisClassifier()
    svc.pack("model", clf)
    print("predict_clipper([X[0]]) ->", svc.predict_clipper([iris.data[0]]))
    path = svc.save()
    print(f"Saved {svc.name}:{svc.version} at {path}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", metavar="PATH", help="write the trained model to PATH instead of saving")
    args = parser.parse_args()
    if args.export:
        export(args.export)
    else:
        main()
