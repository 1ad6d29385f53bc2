#!/usr/bin/env bash
# The iris example end to end: train an SVM, save a bundle from Python, build one from
# bentofile.yaml, and predict through the bundle from the command line.
set -euo pipefail
cd "$(dirname "$0")"
trap 'rm -f model.pkl' EXIT

python train.py                        # train, pack and save with svc.save()
python train.py --export model.pkl     # the model file bentofile.yaml lists under artifacts:
bentolite build                        # build from ./bentofile.yaml into the store
bentolite list IrisClassifier

echo "predict (rows of 4 measurements):"
bentolite run IrisClassifier:latest predict --input '[[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.8, 2.2]]'
echo "predict_clipper (a Clipper query body):"
bentolite run IrisClassifier:latest predict_clipper --input '{"input": [6.5, 3.0, 5.8, 2.2]}'
