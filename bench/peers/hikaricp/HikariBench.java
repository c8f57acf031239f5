// SPDX-License-Identifier: MIT
//
// HikariBench.java: the HikariCP side of qorb's peer benchmark
// (bench/peers/hikaricp/run.sh compiles it into a throwaway folder and runs
// it in turns with qorb's own benchmarks). Two modes, each shaped like the
// qorb benchmark it stands beside:
//
//   pg     like bench/pg/pg_bench's path=qorb: N client threads over a
//          HikariCP pool of 8 (pgjdbc, autoCommit on), each cycle
//          getConnection + Statement.executeQuery("SELECT 1") + read the row
//          + close, a warm-up, then a measured window. Prints
//            bench=pg path=hikaricp reset=none clients=N tps=X p50_us=Y p99_us=Z
//   claim  like bench/claim's threads mode: HikariCP over a DataSource whose
//          connections are java.lang.reflect.Proxy mocks that do nothing, N
//          threads looping getConnection + close. Prints per thread count
//            bench=claim path=hikaricp threads=N pool=M ops_per_s=X
//                p50_ns=Y p99_ns=Z starved=K
//
// Both run a JIT warm-up in the same JVM before anything is timed. Every
// loop is bounded by a stop flag and a cycle count, and a watchdog ends the
// JVM if a run overstays its time by a minute.

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.io.PrintWriter;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;

public final class HikariBench {
  private static final long MAX_CYCLES = 2_000_000_000L; // backstop per thread
  private static final int RING = 1 << 16;               // latency samples per thread

  // Options, with the same defaults as the qorb benchmarks they face.
  private static String mode;
  private static int[] counts = {1, 8, 16, 32};
  private static int pool = 8;
  private static double seconds = 2.0;
  private static double warmup = 0.5;   // per point, before its window
  private static double jitWarmup = 2.0; // once per JVM, before anything timed
  private static int sampleMask = -1;   // -1: the mode's default
  private static String url = "jdbc:postgresql://127.0.0.2:55438/postgres";
  private static String user = "postgres";

  /** One worker's figures; written by its thread, read after join. */
  static final class Worker {
    final long[] samples = new long[RING];
    long nsamples;
    long ops;
    long errors;
    String firstError;
    long finishNs;
  }

  /** The shared phase flags, like bench_common's bench_run_t. */
  static final class Phase {
    volatile boolean measuring;
    volatile boolean stop;
  }

  interface Cycle {
    /** One claim-use-release cycle; throws on failure. */
    void run() throws Exception;
  }

  public static void main(String[] args) throws Exception {
    parse(args);
    // A JVM that overstays its work by a minute is stuck: end it.
    double budget = jitWarmup + counts.length * (warmup + seconds) + 60.0;
    Thread dog = new Thread(() -> {
      try {
        Thread.sleep((long) (budget * 1000));
        System.err.println("HikariBench: watchdog: still running after " + (long) budget + " s");
        System.exit(3);
      } catch (InterruptedException e) {
        // finished in time
      }
    }, "watchdog");
    dog.setDaemon(true);
    dog.start();
    int rc = mode.equals("pg") ? runPg() : runClaim();
    dog.interrupt();
    System.exit(rc);
  }

  private static void usage() {
    System.err.println(
        "usage: HikariBench pg|claim [--clients|--threads 1,8,16,32] [--pool 8]\n"
        + "         [--seconds 2] [--warmup 0.5] [--jit-warmup 2] [--sample-every N]\n"
        + "         [--url jdbc:postgresql://127.0.0.2:55438/postgres] [--user postgres]");
    System.exit(2);
  }

  private static void parse(String[] args) {
    if (args.length < 1 || !(args[0].equals("pg") || args[0].equals("claim"))) usage();
    mode = args[0];
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      if (i + 1 >= args.length) usage();
      String v = args[++i];
      try {
        switch (a) {
          case "--clients":
          case "--threads":
            counts = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
            for (int c : counts) if (c < 1 || c > 256) usage();
            if (counts.length < 1 || counts.length > 16) usage();
            break;
          case "--pool":
            pool = Integer.parseInt(v);
            if (pool < 1 || pool > 256) usage();
            break;
          case "--seconds":
            seconds = Double.parseDouble(v);
            if (seconds < 0.05 || seconds > 60) usage();
            break;
          case "--warmup":
            warmup = Double.parseDouble(v);
            if (warmup < 0 || warmup > 30) usage();
            break;
          case "--jit-warmup":
            jitWarmup = Double.parseDouble(v);
            if (jitWarmup < 0 || jitWarmup > 60) usage();
            break;
          case "--sample-every":
            int n = Integer.parseInt(v);
            if (n < 1 || n > 4096 || Integer.bitCount(n) != 1) usage();
            sampleMask = n - 1;
            break;
          case "--url":
            url = v;
            break;
          case "--user":
            user = v;
            break;
          default:
            usage();
        }
      } catch (NumberFormatException e) {
        usage();
      }
    }
  }

  // ---------------------------------------------------------------------
  // The measured loop, shared by both modes

  /**
   * Runs n threads over `cycle` for warmupS, then measures for measureS.
   * Threads count the cycles they start while the window is open (as
   * pg_bench does) and time one cycle in (mask + 1). Returns the window in
   * ns; with `untilLastFinish` (claim mode, as bench/claim) the window ends
   * when the last thread has finished its last cycle.
   */
  private static long runThreads(int n, Cycle cycle, Worker[] ws, double warmupS,
                                 double measureS, int mask, boolean untilLastFinish)
      throws InterruptedException {
    Phase ph = new Phase();
    CountDownLatch ready = new CountDownLatch(n);
    CountDownLatch go = new CountDownLatch(1);
    Thread[] ts = new Thread[n];
    for (int i = 0; i < n; i++) {
      Worker w = ws[i] = new Worker();
      ts[i] = new Thread(() -> {
        ready.countDown();
        try {
          go.await();
        } catch (InterruptedException e) {
          return;
        }
        long[] ring = w.samples;
        for (long k = 0; k < MAX_CYCLES && !ph.stop; k++) {
          boolean measuring = ph.measuring;
          boolean timed = measuring && (k & mask) == 0;
          long t0 = timed ? System.nanoTime() : 0;
          try {
            cycle.run();
          } catch (Exception e) {
            if (w.errors++ == 0) w.firstError = e.toString().split("\n")[0];
            try {
              Thread.sleep(1);
            } catch (InterruptedException ie) {
              return;
            }
            continue;
          }
          if (timed) ring[(int) (w.nsamples++ & (RING - 1))] = System.nanoTime() - t0;
          if (measuring) w.ops++;
        }
        w.finishNs = System.nanoTime();
      }, "bench-" + i);
      ts[i].start();
    }
    ready.await(10, TimeUnit.SECONDS);
    go.countDown();
    sleepS(warmupS);
    long t0 = System.nanoTime();
    ph.measuring = true;
    sleepS(measureS);
    ph.measuring = false;
    long t1 = System.nanoTime();
    ph.stop = true;
    long last = t1;
    for (int i = 0; i < n; i++) {
      ts[i].join(30_000);
      if (ts[i].isAlive()) System.err.println("HikariBench: thread " + i + " did not stop");
      last = Math.max(last, ws[i].finishNs);
    }
    return (untilLastFinish ? last : t1) - t0;
  }

  private static void sleepS(double s) throws InterruptedException {
    long ns = (long) (s * 1e9);
    long end = System.nanoTime() + ns;
    for (int i = 0; i < 100_000; i++) { // bounded: 20 ms naps, so > 30 min
      long left = end - System.nanoTime();
      if (left <= 0) return;
      TimeUnit.NANOSECONDS.sleep(Math.min(left, 20_000_000L));
    }
  }

  /** p50 and p99 (ns) over every worker's samples. */
  private static long[] percentiles(Worker[] ws) {
    int total = 0;
    for (Worker w : ws) total += (int) Math.min(w.nsamples, RING);
    if (total == 0) return new long[] {0, 0};
    long[] all = new long[total];
    int k = 0;
    for (Worker w : ws) {
      int m = (int) Math.min(w.nsamples, RING);
      System.arraycopy(w.samples, 0, all, k, m);
      k += m;
    }
    Arrays.sort(all);
    return new long[] {all[(int) ((total - 1) * 0.50)], all[(int) ((total - 1) * 0.99)]};
  }

  private static String errorsOf(Worker[] ws) {
    long errors = 0;
    String first = null;
    for (Worker w : ws) {
      errors += w.errors;
      if (first == null) first = w.firstError;
    }
    return errors == 0 ? "" : " errors=" + errors + " first_error=\"" + first.replace('"', '\'') + "\"";
  }

  // ---------------------------------------------------------------------
  // pg: SELECT 1 through HikariCP + pgjdbc

  private static int runPg() throws Exception {
    HikariConfig cfg = new HikariConfig();
    cfg.setPoolName("hikari-bench");
    cfg.setDriverClassName("org.postgresql.Driver");
    cfg.setJdbcUrl(url);
    cfg.setUsername(user);
    cfg.setMaximumPoolSize(pool);
    cfg.setMinimumIdle(pool);
    cfg.setAutoCommit(true);
    cfg.setConnectionTimeout(10_000);
    cfg.addDataSourceProperty("ApplicationName", "hikaricp_bench");
    int mask = sampleMask >= 0 ? sampleMask : 15;
    int failed = 0;
    try (HikariDataSource ds = new HikariDataSource(cfg)) {
      waitIdle(ds);
      Cycle cycle = () -> {
        try (Connection c = ds.getConnection();
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT 1")) {
          if (!rs.next() || rs.getInt(1) != 1) throw new SQLException("SELECT 1: no row");
        }
      };
      // JIT warm-up: the whole path, at the largest client count asked for.
      int most = Arrays.stream(counts).max().getAsInt();
      if (jitWarmup > 0) runThreads(most, cycle, new Worker[most], jitWarmup, 0.05, mask, false);
      for (int n : counts) {
        Worker[] ws = new Worker[n];
        long window = runThreads(n, cycle, ws, warmup, seconds, mask, false);
        long ops = 0;
        for (Worker w : ws) ops += w.ops;
        long[] p = percentiles(ws);
        String err = errorsOf(ws);
        if (ops == 0) failed = 1;
        System.out.printf(Locale.ROOT,
            "bench=pg path=hikaricp reset=none clients=%d tps=%.0f p50_us=%.0f p99_us=%.0f%s%n",
            n, ops / (window / 1e9), p[0] / 1e3, p[1] / 1e3, err);
        System.out.flush();
      }
    }
    return failed;
  }

  /** Waits (bounded, 10 s) until the pool holds `pool` idle connections. */
  private static void waitIdle(HikariDataSource ds) throws InterruptedException {
    for (int i = 0; i < 1000; i++) {
      if (ds.getHikariPoolMXBean() != null && ds.getHikariPoolMXBean().getIdleConnections() >= pool)
        return;
      Thread.sleep(10);
    }
    System.err.println("HikariBench: pool not full after 10 s, measuring anyway");
  }

  // ---------------------------------------------------------------------
  // claim: the pool's own cost, over connections that do nothing

  static final AtomicInteger opened = new AtomicInteger();
  static final AtomicInteger closed = new AtomicInteger();

  /** A mock Connection: every call returns at once with a neutral answer. */
  static final class MockConnection implements InvocationHandler {
    @Override
    public Object invoke(Object proxy, Method m, Object[] args) throws SQLException {
      switch (m.getName()) {
        case "isValid":
        case "getAutoCommit":
          return Boolean.TRUE;
        case "isClosed":
        case "isReadOnly":
        case "isWrapperFor":
          return Boolean.FALSE;
        case "getTransactionIsolation":
          return Connection.TRANSACTION_READ_COMMITTED;
        case "getNetworkTimeout":
          return 0;
        case "close":
          closed.incrementAndGet();
          return null;
        case "hashCode":
          return System.identityHashCode(proxy);
        case "equals":
          return proxy == args[0];
        case "toString":
          return "MockConnection@" + Integer.toHexString(System.identityHashCode(proxy));
        case "unwrap":
          if (((Class<?>) args[0]).isInstance(proxy)) return proxy;
          throw new SQLException("not a wrapper");
        default:
          return neutral(m.getReturnType());
      }
    }
  }

  /** A mock DataSource handing out MockConnections. */
  static final class MockDataSource implements InvocationHandler {
    @Override
    public Object invoke(Object proxy, Method m, Object[] args) throws SQLException {
      switch (m.getName()) {
        case "getConnection":
          opened.incrementAndGet();
          return Proxy.newProxyInstance(HikariBench.class.getClassLoader(),
              new Class<?>[] {Connection.class}, new MockConnection());
        case "hashCode":
          return System.identityHashCode(proxy);
        case "equals":
          return proxy == args[0];
        case "toString":
          return "MockDataSource";
        case "isWrapperFor":
          return Boolean.FALSE;
        case "unwrap":
          throw new SQLException("not a wrapper");
        case "getLogWriter":
          return new PrintWriter(System.err);
        default:
          return neutral(m.getReturnType());
      }
    }
  }

  private static Object neutral(Class<?> t) {
    if (t == boolean.class) return Boolean.FALSE;
    if (t == int.class) return 0;
    if (t == long.class) return 0L;
    if (t == short.class) return (short) 0;
    if (t == byte.class) return (byte) 0;
    if (t == double.class) return 0.0;
    if (t == float.class) return 0.0f;
    if (t == char.class) return (char) 0;
    return null;
  }

  private static int runClaim() throws Exception {
    DataSource mock = (DataSource) Proxy.newProxyInstance(HikariBench.class.getClassLoader(),
        new Class<?>[] {DataSource.class}, new MockDataSource());
    HikariConfig cfg = new HikariConfig();
    cfg.setPoolName("hikari-claim");
    cfg.setDataSource(mock);
    cfg.setMaximumPoolSize(pool);
    cfg.setMinimumIdle(pool);
    cfg.setAutoCommit(true);
    cfg.setConnectionTimeout(10_000);
    int mask = sampleMask >= 0 ? sampleMask : 63; // as bench/claim: 1 in 64
    int failed = 0;
    try (HikariDataSource ds = new HikariDataSource(cfg)) {
      waitIdle(ds);
      Cycle cycle = () -> ds.getConnection().close();
      // JIT warm-up: every thread count in turn, so each contention path
      // (thread-local fast path, shared list, hand-off queue) is compiled.
      if (jitWarmup > 0)
        for (int n : counts)
          runThreads(n, cycle, new Worker[n], jitWarmup / counts.length, 0.01, mask, true);
      for (int n : counts) {
        Worker[] ws = new Worker[n];
        long window = runThreads(n, cycle, ws, warmup, seconds, mask, true);
        long ops = 0;
        int starved = 0;
        for (Worker w : ws) {
          ops += w.ops;
          if (w.ops == 0) starved++;
        }
        long[] p = percentiles(ws);
        String err = errorsOf(ws);
        if (starved > 0 || !err.isEmpty()) failed = 1;
        String line = String.format(Locale.ROOT,
            "bench=claim path=hikaricp threads=%d pool=%d ops_per_s=%.0f p50_ns=%d p99_ns=%d starved=%d%s",
            n, pool, ops / (window / 1e9), p[0], p[1], starved, err);
        System.out.println(line);
        System.out.flush();
      }
    }
    if (opened.get() != closed.get()) {
      System.err.println("HikariBench: mock connections opened=" + opened.get()
          + " closed=" + closed.get());
      failed = 1;
    }
    return failed;
  }
}
