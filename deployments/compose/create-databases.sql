-- Run once by the postgres image on an empty data folder: POSTGRES_DB makes `prefect`, this makes `mlflow`.
CREATE DATABASE mlflow OWNER pipeline;
