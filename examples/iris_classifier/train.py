"""Train an SVM on the iris data set, pack it into IrisClassifier and save a bundle."""

from sklearn import datasets, svm

from iris_classifier import IrisClassifier


def train():
    iris = datasets.load_iris()
    clf = svm.SVC(gamma="scale")
    clf.fit(iris.data, iris.target)
    return clf, iris


def main() -> str:
    clf, iris = train()
    svc = IrisClassifier()
    svc.pack("model", clf)
    print("predict_clipper([X[0]]) ->", svc.predict_clipper([iris.data[0]]))
    path = svc.save()
    print(f"Saved {svc.name}:{svc.version} at {path}")
    return path


if __name__ == "__main__":
    main()
