// A small AMQP 1.0 test broker (rhea) standing in for Service Bus in tests.
//
// It is a test double: it shows what the azservicebus SDK puts on the wire,
// not how Service Bus behaves. It
//   - accepts every link attach, echoing the peer's source and target;
//   - answers requests on "$cbs" (put-token) and "<entity>/$management" with
//     application property status-code = int 200 and correlation-id = the
//     request's message-id, sent on the link attached from the reply-to address;
//   - records every message received on a queue link as one JSON line on stdout.
// It does not deliver messages to receiver links: it only observes senders.
//
// Usage: node broker.mjs [port]   (0 or absent: any free port)
// Stdout: the first line is the port number; then one JSON object per message:
//   {"queue","message_id","content_type","subject","application_properties",
//    "message_annotations","body_type","body_base64"}
// Timestamps (e.g. x-opt-scheduled-enqueue-time) appear as
// {"timestamp_ms": <milliseconds since the epoch>}.
import rhea from 'rhea';

const port = Number(process.argv[2] ?? 0);
const container = rhea.create_container({ id: 'dsr-test-broker' });

const replyLinks = new Map(); // reply-to address -> sender link

function isControl(address) {
  return address === '$cbs' || (address ?? '').endsWith('/$management');
}

function jsonValue(v) {
  if (v instanceof Date) return { timestamp_ms: v.getTime() };
  if (Buffer.isBuffer(v)) return { binary_base64: v.toString('base64') };
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function bodyOf(message) {
  const b = message.body;
  if (b && b.typecode === 0x75) {
    const parts = b.multiple ? b.content : [b.content];
    return { body_type: 'data', body_base64: Buffer.concat(parts).toString('base64') };
  }
  if (b && b.typecode === 0x76) return { body_type: 'sequence', body: jsonValue(b.content) };
  return { body_type: 'value', body: jsonValue(b) };
}

function record(address, message) {
  const line = {
    queue: address,
    message_id: jsonValue(message.message_id),
    content_type: message.content_type,
    subject: message.subject,
    application_properties: jsonValue(message.application_properties ?? {}),
    message_annotations: jsonValue(message.message_annotations ?? {}),
    ...bodyOf(message),
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}

function reply(request) {
  const to = request.reply_to;
  const link = replyLinks.get(to);
  if (!link) {
    console.error(`broker: no reply link for ${to}`);
    return;
  }
  link.send({
    to,
    correlation_id: request.message_id,
    application_properties: {
      'status-code': rhea.types.wrap_int(200),
      'status-description': 'OK',
    },
    body: {},
  });
}

// Echo the peer's terminus and settle modes so the attach looks accepted.
function acceptAttach(link) {
  const remote = link.remote.attach;
  if (remote.source) link.set_source(remote.source);
  if (remote.target) link.set_target(remote.target);
  link.local.attach.snd_settle_mode = remote.snd_settle_mode;
  link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
}

// The peer sends to us on this link.
container.on('receiver_open', (context) => {
  acceptAttach(context.receiver);
});

// The peer receives from us on this link.
container.on('sender_open', (context) => {
  const sender = context.sender;
  acceptAttach(sender);
  if (isControl(sender.remote.attach.source?.address)) {
    replyLinks.set(sender.remote.attach.target?.address, sender);
  }
});

function forget(pred) {
  for (const [k, v] of replyLinks) if (pred(v)) replyLinks.delete(k);
}
container.on('sender_close', (context) => forget((l) => l === context.sender));
container.on('disconnected', (context) => forget((l) => l.connection === context.connection));

container.on('message', (context) => {
  const address = context.receiver.remote.attach.target?.address;
  const message = context.message;
  if (isControl(address)) {
    reply(message);
    return;
  }
  record(address, message);
});

container.on('error', (err) => console.error('broker error:', err));

const server = container.listen({ host: '127.0.0.1', port });
server.on('listening', () => {
  process.stdout.write(`${server.address().port}\n`);
});
server.on('error', (err) => {
  console.error('broker listen error:', err);
  process.exit(1);
});
