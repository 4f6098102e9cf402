// Apache Tika (the tika-app jar) as a worker for bench/peers.py, in the protocol of bench/peer_worker.py:
// one path per line on stdin, one JSON answer per line on stdout. Run in Java's source-file mode:
//     java -cp ~/.cache/lakedoc/jars/tika-app-3.2.2.jar bench/TikaWorker.java
// Tika's facade parses with the AutoDetectParser, embedded documents (attachments) included.

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;

import org.apache.tika.Tika;

public class TikaWorker {
    public static void main(String[] args) throws Exception {
        PrintStream proto = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);  // whatever Tika prints goes to stderr, not into the protocol
        Tika tika = new Tika();
        tika.setMaxStringLength(-1);
        proto.println("{\"ready\": true, \"version\": " + quote(tika.toString()) + ", \"na\": {}}");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            String answer;
            try {
                String text = tika.parseToString(Paths.get(line));
                answer = "{\"outcome\": " + quote(text.isBlank() ? "empty" : "text") + ", \"text\": " + quote(text) + "}";
            } catch (Throwable e) {  // a peer's exception is its outcome "error"
                String msg = e.getClass().getSimpleName() + ": " + e.getMessage();
                for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                    msg += " / " + c.getClass().getSimpleName() + ": " + c.getMessage();
                }
                answer = "{\"outcome\": \"error\", \"text\": \"\", \"error\": "
                        + quote(msg.length() > 500 ? msg.substring(0, 500) : msg) + "}";
            }
            proto.println(answer);
        }
        proto.println("{\"bye\": true, \"children_maxrss_mb\": 0}");
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }
}
