// The official openai npm client's realtime transcription against a malsori server.
// Usage: node realtime_transcription.mjs BASE_URL API_KEY AUDIO.raw  (raw PCM16, 24 kHz, mono)
// Prints {"transcript": ..., "types": [...]} on stdout; exits non-zero on an error event.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [baseURL, apiKey, audioPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey });
// The client always opens wss://; a malsori server on a plain-HTTP port (tests, local use) needs
// a plain TCP connection: the ws package's createConnection option gives one (MALSORI_PLAIN_WS=1).
// Elsewhere, put malsori behind TLS.
const options = process.env.MALSORI_PLAIN_WS === '1'
  ? { createConnection: (opts) => net.connect(opts.port === 443 || !opts.port ? { ...opts, port: Number(new URL(baseURL).port) } : opts) }
  : {};
const rt = new OpenAIRealtimeWS({ model: 'gpt-4o-transcribe', options }, client);
const types = [];
const timer = setTimeout(() => { console.error('timed out', types); process.exit(3); }, 60000);

rt.on('event', (event) => types.push(event.type));
rt.on('error', (err) => { console.error('error event', JSON.stringify(err.error ?? err.message)); process.exit(2); });
rt.on('conversation.item.input_audio_transcription.completed', (event) => {
  console.log(JSON.stringify({ transcript: event.transcript, types }));
  clearTimeout(timer);
  rt.close();
});
rt.socket.on('open', () => {
  rt.send({
    type: 'session.update',
    session: {
      type: 'transcription',
      audio: { input: {
        format: { type: 'audio/pcm', rate: 24000 },
        transcription: { model: 'gpt-4o-transcribe', language: 'en' },
        turn_detection: null,
      } },
    },
  });
  const audio = readFileSync(audioPath);
  for (let i = 0; i < audio.length; i += 4800) {
    rt.send({ type: 'input_audio_buffer.append', audio: audio.subarray(i, i + 4800).toString('base64') });
  }
  rt.send({ type: 'input_audio_buffer.commit' });
});
