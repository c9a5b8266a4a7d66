-- Run once by the postgres image on an empty data folder: POSTGRES_DB makes `prefect`, this makes `mlflow`
-- and `ledger` (the data ledger and locks when the workspace's data is in object storage).
CREATE DATABASE mlflow OWNER pipeline;
CREATE DATABASE ledger OWNER pipeline;
