"""Train a scikit-learn Ridge regression on the diabetes data set and save it.

Written the way Azure ML's public samples train their "sklearn_regression_model.pkl":
a small Ridge model on sklearn.datasets.load_diabetes, saved with joblib.

    /usr/bin/python3 train.py            # writes sklearn_regression_model.pkl here
    /usr/bin/python3 train.py -o out.pkl # or somewhere else
"""
import argparse
import os

import joblib
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

SEED = 42


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                "sklearn_regression_model.pkl"),
                        help="where to write the model (default: next to this script)")
    parser.add_argument("--alpha", type=float, default=0.5, help="Ridge regularization strength")
    args = parser.parse_args()

    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED)

    model = Ridge(alpha=args.alpha, random_state=SEED)
    model.fit(X_train, y_train)

    rmse = float(np.sqrt(mean_squared_error(y_test, model.predict(X_test))))
    print(f"Ridge(alpha={args.alpha}) trained on {len(X_train)} rows; test RMSE {rmse:.2f}")

    joblib.dump(model, args.output)
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
