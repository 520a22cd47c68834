// The seed article's kafkajs consumer group, reading our topics. The one
// line it needs: register an LZ4 codec, because our producers compress
// with lz4 (KAFKA_COMPRESSION's default) and kafkajs reads only gzip
// without one. docs/interop.md walks through it; interop.test.mjs runs it.
//
//   node consumer.mjs notify.us-east-1.app.v1 inventory.restock.v1
import kafkajs from "kafkajs"; // CommonJS: its names come from the default export
import LZ4 from "kafkajs-lz4";

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = kafkajs;

CompressionCodecs[CompressionTypes.LZ4] = new LZ4().codec;

// consume runs a consumer group over topics from the beginning and hands
// every record to eachMessage; it returns the consumer (disconnect() stops it).
export async function consume({ brokers, groupId, topics, eachMessage }) {
  const kafka = new Kafka({ clientId: "interop-example", brokers, logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  for (const topic of topics) {
    await consumer.subscribe({ topic, fromBeginning: true });
  }
  await consumer.run({ eachMessage });
  return consumer;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const brokers = (process.env.KAFKA_BROKERS || "127.0.0.1:19092").split(",");
  const topics = process.argv.slice(2);
  if (topics.length === 0) {
    console.error("usage: node consumer.mjs TOPIC...");
    process.exit(2);
  }
  const consumer = await consume({
    brokers,
    groupId: process.env.GROUP_ID || "interop-example",
    topics,
    eachMessage: async ({ topic, partition, message }) => {
      console.log(JSON.stringify({ topic, partition, key: message.key?.toString(), value: JSON.parse(message.value.toString()) }));
    },
  });
  for (const sig of ["SIGINT", "SIGTERM"]) process.once(sig, () => consumer.disconnect().then(() => process.exit(0)));
}
