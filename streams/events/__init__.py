"""CloudEvents on Kafka as the three processes (webhooks, worker, deploy) all read and write them.

`decoding`: a Kafka record into a CloudEvent the catalog declares for its topic, or why not (`Undecodable`).
`encoding`: a CloudEvent into a structured-mode Kafka record.
`deadletters`: the headers of a record on autodeploy.deadletter, one scheme for every process.

The processes share these and nothing else, so none of them imports another (the import contracts in .importlinter
hold them to it).
"""
