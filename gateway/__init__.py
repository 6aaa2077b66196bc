"""Run the whole stack on one machine without Docker: Nginx, the logger and a predictor pool.

    python -m gateway up --predictors 3 --port 8080
    python -m gateway config --predictors 3
"""
