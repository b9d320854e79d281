"""Train and evaluate the Keras churn model on the point-in-time training set."""
