// The JDK's own java.net.http.HttpClient against `ferrum serve`, called the way a Spring backend
// calls an OpenAI-compatible server: one shared client with default settings (HTTP/2 asked for,
// so the JDK sends `Upgrade: h2c` on plain http), `Authorization: Bearer`, a per-request timeout,
// a JSON body with a system prompt; streaming read line by line with BodyHandlers.ofLines().
//
// Single-file program, no third-party jars: run with `java FerrumClientTest.java`.
// Environment: E2E_URL (http://host:port), E2E_KEY, E2E_MODEL.
// Exits non-zero when any check fails, after running them all.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.stream.Stream;

public class FerrumClientTest {
    static final String URL = System.getenv("E2E_URL");
    static final String KEY = System.getenv("E2E_KEY");
    static final String MODEL = System.getenv("E2E_MODEL");
    static final HttpClient CLIENT = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static final String MESSAGES = "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
            + "{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]";

    public static void main(String[] args) throws Exception {
        if (URL == null || KEY == null || MODEL == null) {
            System.err.println("set E2E_URL, E2E_KEY and E2E_MODEL");
            System.exit(2);
        }
        int failed = 0;
        String[] names = {"blockingChat", "streamingChatMatchesBlocking", "chunkedBodyWithUpgradeOffer",
                "springAiShapedBody", "wrongKeyIs401", "timeoutFreesRequest", "closedStreamFreesRequest"};
        for (String name : names) {
            try {
                FerrumClientTest.class.getDeclaredMethod(name).invoke(null);
                System.out.println("  ok   " + name);
            } catch (java.lang.reflect.InvocationTargetException e) {
                failed++;
                System.out.println("  FAIL " + name + ": " + e.getCause());
            }
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    // ---- the tests ----

    static String blockingContent;

    static void blockingChat() throws Exception {
        HttpResponse<String> r = CLIENT.send(chat("{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES
                + ",\"temperature\":0,\"top_p\":1,\"max_tokens\":32}", KEY, Duration.ofSeconds(180)),
                HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "status " + r.statusCode() + ": " + r.body());
        check(r.version() == HttpClient.Version.HTTP_1_1, "expected HTTP/1.1 after the h2c upgrade offer, got " + r.version());
        check(r.headers().firstValue("content-type").orElse("").startsWith("application/json"), "content-type");
        Map<String, Object> body = obj(Json.parse(r.body()));
        check("chat.completion".equals(body.get("object")), "object: " + body.get("object"));
        check(str(body.get("id")).startsWith("chatcmpl-"), "id: " + body.get("id"));
        check(MODEL.equals(body.get("model")), "model: " + body.get("model"));
        List<Object> choices = list(body.get("choices"));
        check(choices.size() == 1, "one choice");
        Map<String, Object> choice = obj(choices.get(0));
        check(num(choice.get("index")) == 0, "index 0");
        Map<String, Object> message = obj(choice.get("message"));
        check("assistant".equals(message.get("role")), "role");
        blockingContent = str(message.get("content"));
        check(blockingContent.contains("Paris"), "content without Paris: " + blockingContent);
        String finish = str(choice.get("finish_reason"));
        check(finish.equals("stop") || finish.equals("length"), "finish_reason " + finish);
        Map<String, Object> usage = obj(body.get("usage"));
        long prompt = num(usage.get("prompt_tokens")), completion = num(usage.get("completion_tokens"));
        check(prompt > 10 && completion > 0 && completion <= 32, "usage " + usage);
        check(num(usage.get("total_tokens")) == prompt + completion, "total_tokens " + usage);
    }

    static void streamingChatMatchesBlocking() throws Exception {
        if (blockingContent == null) {
            blockingChat();
        }
        // Spring AI 2.x adds stream_options.include_usage to every streaming call.
        HttpResponse<Stream<String>> r = CLIENT.send(chat("{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES
                + ",\"temperature\":0,\"top_p\":1,\"max_tokens\":32,\"stream\":true,"
                + "\"stream_options\":{\"include_usage\":true}}", KEY, Duration.ofSeconds(180)),
                HttpResponse.BodyHandlers.ofLines());
        check(r.statusCode() == 200, "status " + r.statusCode());
        check(r.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"), "content-type");
        StringBuilder text = new StringBuilder();
        String id = null, finish = null;
        boolean done = false, sawRole = false;
        Map<String, Object> usage = null;
        int chunks = 0;
        try (Stream<String> lines = r.body()) {
            Iterator<String> it = lines.iterator();
            while (it.hasNext()) {
                String line = it.next();
                if (line.isEmpty() || line.startsWith(":")) {
                    continue; // event separator or keep-alive comment
                }
                check(!done, "data after [DONE]: " + line);
                check(line.startsWith("data: "), "not an SSE data line: " + line);
                String data = line.substring(6);
                if (data.equals("[DONE]")) {
                    done = true;
                    continue;
                }
                check(usage == null, "a chunk after the usage chunk: " + data);
                Map<String, Object> chunk = obj(Json.parse(data));
                check(!chunk.containsKey("error"), "error event: " + data);
                check("chat.completion.chunk".equals(chunk.get("object")), "object: " + chunk.get("object"));
                id = id == null ? str(chunk.get("id")) : id;
                check(id.equals(chunk.get("id")), "every chunk has the same id");
                List<Object> choices = list(chunk.get("choices"));
                if (chunk.get("usage") != null) {
                    check(choices.isEmpty(), "the usage chunk has empty choices");
                    usage = obj(chunk.get("usage"));
                    continue;
                }
                chunks++;
                check(choices.size() == 1, "one choice per chunk");
                Map<String, Object> c = obj(choices.get(0));
                check(num(c.get("index")) == 0, "choice index 0");
                Map<String, Object> delta = obj(c.get("delta"));
                if ("assistant".equals(delta.get("role"))) {
                    sawRole = true;
                }
                if (delta.get("content") != null) {
                    text.append(str(delta.get("content")));
                }
                if (c.get("finish_reason") != null) {
                    check(finish == null, "two finish_reasons");
                    finish = str(c.get("finish_reason"));
                }
            }
        }
        check(done, "stream ended without [DONE]");
        check(sawRole, "no delta with role assistant");
        check(chunks >= 2, "chunks: " + chunks);
        check(finish != null, "no finish_reason");
        check(text.toString().equals(blockingContent), "streamed text differs:\n" + text + "\n---\n" + blockingContent);
        check(usage != null && num(usage.get("completion_tokens")) > 0, "usage chunk: " + usage);
    }

    static void chunkedBodyWithUpgradeOffer() throws Exception {
        // A streamed body has no Content-Length: the JDK sends it chunked, still offering h2c
        // (the combination that made uvicorn see an empty body, spring-ai #3060).
        byte[] json = ("{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES + ",\"max_tokens\":4}")
                .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        HttpRequest req = HttpRequest.newBuilder(URI.create(URL + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + KEY)
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(json)))
                .build();
        HttpResponse<String> r = CLIENT.send(req, HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "status " + r.statusCode() + ": " + r.body());
        Map<String, Object> usage = obj(obj(Json.parse(r.body())).get("usage"));
        check(num(usage.get("prompt_tokens")) > 10, "the prompt did not arrive whole: " + usage);
    }

    static void springAiShapedBody() throws Exception {
        // What Spring AI's OpenAiApi serializes: content as a list of text parts (spring-ai #998),
        // OpenAI-only fields vLLM ignores, extra-body options flattened to the top level.
        String body = "{\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"You are a helpful assistant.\"}],"
                + "\"role\":\"system\"},{\"content\":[{\"type\":\"text\",\"text\":\"What is the capital of France?\"}],"
                + "\"role\":\"user\"}],\"model\":\"" + MODEL + "\",\"store\":false,\"max_tokens\":32,\"n\":1,"
                + "\"stream\":false,\"temperature\":0.0,\"top_p\":1.0,\"frequency_penalty\":0.0,\"presence_penalty\":0.0,"
                + "\"user\":\"backend-1\",\"parallel_tool_calls\":false,\"top_k\":1,\"repetition_penalty\":1.0}";
        HttpResponse<String> r = CLIENT.send(chat(body, KEY, Duration.ofSeconds(180)), HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "status " + r.statusCode() + ": " + r.body());
        Map<String, Object> message = obj(obj(list(obj(Json.parse(r.body())).get("choices")).get(0)).get("message"));
        if (blockingContent != null) {
            check(blockingContent.equals(message.get("content")), "parts joined differently: " + message.get("content"));
        }
    }

    static void wrongKeyIs401() throws Exception {
        String body = "{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES + ",\"max_tokens\":4}";
        for (String key : new String[] {"wrong-" + KEY, null}) {
            HttpResponse<String> r = CLIENT.send(chat(body, key, Duration.ofSeconds(30)),
                    HttpResponse.BodyHandlers.ofString());
            check(r.statusCode() == 401, "status " + r.statusCode() + " with key " + key);
            Map<String, Object> error = obj(obj(Json.parse(r.body())).get("error"));
            for (String field : new String[] {"message", "type", "param", "code"}) {
                check(error.containsKey(field), "error without " + field + ": " + r.body());
            }
            check(!str(error.get("message")).isEmpty(), "empty message");
            check("authentication_error".equals(error.get("type")), "type " + error.get("type"));
        }
    }

    static void timeoutFreesRequest() throws Exception {
        awaitIdle(Duration.ofSeconds(10));
        // A generation far longer than the client waits for: the client gives up, the server must
        // notice the closed connection and drop the request.
        HttpRequest req = chat("{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES
                + ",\"max_tokens\":1500,\"ignore_eos\":true}", KEY, Duration.ofMillis(1500));
        CompletableFuture<HttpResponse<String>> pending = CLIENT.sendAsync(req, HttpResponse.BodyHandlers.ofString());
        boolean sawRunning = false;
        while (!pending.isDone()) {
            sawRunning |= running() >= 1;
            Thread.sleep(50);
        }
        try {
            HttpResponse<String> r = pending.get();
            throw new AssertionError("expected a timeout, got " + r.statusCode());
        } catch (ExecutionException e) {
            check(e.getCause() instanceof HttpTimeoutException, "expected HttpTimeoutException, got " + e.getCause());
        }
        check(sawRunning, "the request never showed in vllm:num_requests_running");
        long ms = awaitIdle(Duration.ofSeconds(2));
        System.out.println("       running count back to 0 " + ms + " ms after the client timed out");
    }

    static void closedStreamFreesRequest() throws Exception {
        awaitIdle(Duration.ofSeconds(10));
        HttpResponse<Stream<String>> r = CLIENT.send(chat("{\"model\":\"" + MODEL + "\",\"messages\":" + MESSAGES
                + ",\"max_tokens\":1500,\"ignore_eos\":true,\"stream\":true}", KEY, Duration.ofSeconds(180)),
                HttpResponse.BodyHandlers.ofLines());
        check(r.statusCode() == 200, "status " + r.statusCode());
        try (Stream<String> lines = r.body()) {
            Iterator<String> it = lines.iterator();
            int events = 0;
            while (events < 3 && it.hasNext()) {
                if (it.next().startsWith("data: ")) {
                    events++;
                }
            }
            check(running() >= 1, "the stream is not running");
        } // closing the stream cancels the subscription and the connection
        awaitIdle(Duration.ofSeconds(2));
    }

    // ---- helpers ----

    static HttpRequest chat(String json, String key, Duration timeout) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(URL + "/v1/chat/completions"))
                .timeout(timeout)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json, text/event-stream")
                .POST(HttpRequest.BodyPublishers.ofString(json));
        if (key != null) {
            b.header("Authorization", "Bearer " + key);
        }
        return b.build();
    }

    /** `vllm:num_requests_running` summed over its label sets. */
    static double running() throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create(URL + "/metrics")).timeout(Duration.ofSeconds(10))
                .header("Authorization", "Bearer " + KEY).GET().build();
        HttpResponse<String> r = CLIENT.send(req, HttpResponse.BodyHandlers.ofString());
        check(r.statusCode() == 200, "/metrics status " + r.statusCode());
        double sum = 0;
        boolean found = false;
        for (String line : r.body().split("\n")) {
            if (line.startsWith("vllm:num_requests_running{") || line.startsWith("vllm:num_requests_running ")) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                found = true;
            }
        }
        check(found, "no vllm:num_requests_running in /metrics");
        return sum;
    }

    /** Waits until nothing runs; returns the milliseconds it took, fails after `limit`. */
    static long awaitIdle(Duration limit) throws Exception {
        long start = System.nanoTime();
        while (true) {
            double n = running();
            long ms = (System.nanoTime() - start) / 1_000_000;
            if (n == 0) {
                return ms;
            }
            check(ms < limit.toMillis(), "vllm:num_requests_running still " + n + " after " + ms + " ms");
            Thread.sleep(20);
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Object v) {
        check(v instanceof Map, "expected a JSON object, got " + v);
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Object v) {
        check(v instanceof List, "expected a JSON array, got " + v);
        return (List<Object>) v;
    }

    static String str(Object v) {
        check(v instanceof String, "expected a JSON string, got " + v);
        return (String) v;
    }

    static long num(Object v) {
        check(v instanceof Double && (Double) v == Math.rint((Double) v), "expected a JSON integer, got " + v);
        return ((Double) v).longValue();
    }

    /** A strict JSON parser (RFC 8259): objects, arrays, strings with escapes, numbers, literals. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.ws();
            if (p.i != text.length()) {
                throw p.error("trailing characters");
            }
            return v;
        }

        private Object value() {
            ws();
            if (i >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{': return object();
                case '[': return array();
                case '"': return string();
                case 't': return literal("true", Boolean.TRUE);
                case 'f': return literal("false", Boolean.FALSE);
                case 'n': return literal("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        return number();
                    }
                    throw error("unexpected '" + c + "'");
            }
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            ws();
            if (peek() == '}') {
                i++;
                return m;
            }
            while (true) {
                ws();
                if (peek() != '"') {
                    throw error("expected a key");
                }
                String k = string();
                ws();
                expect(':');
                if (m.put(k, value()) != null) {
                    throw error("duplicate key " + k);
                }
                ws();
                if (peek() == ',') {
                    i++;
                } else {
                    expect('}');
                    return m;
                }
            }
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            ws();
            if (peek() == ']') {
                i++;
                return l;
            }
            while (true) {
                l.add(value());
                ws();
                if (peek() == ',') {
                    i++;
                } else {
                    expect(']');
                    return l;
                }
            }
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++;
            while (true) {
                if (i >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c < 0x20) {
                    throw error("control character in string");
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': b.append(e); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                    default: throw error("bad escape \\" + e);
                }
            }
        }

        private Double number() {
            int start = i;
            if (peek() == '-') {
                i++;
            }
            while (i < s.length() && "0123456789.eE+-".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            return Double.valueOf(s.substring(start, i));
        }

        private Object literal(String word, Object v) {
            if (!s.startsWith(word, i)) {
                throw error("bad literal");
            }
            i += word.length();
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
        }

        private char peek() {
            return i < s.length() ? s.charAt(i) : '\0';
        }

        private void expect(char c) {
            if (peek() != c) {
                throw error("expected '" + c + "'");
            }
            i++;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON: " + what + " at " + i + " in " + s);
        }
    }
}
