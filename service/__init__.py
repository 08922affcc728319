"""predict_buy_app: the HTTP prediction service that serves the trained model's compiled form."""
