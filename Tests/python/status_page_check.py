#!/usr/bin/env python3
"""The status page in a real browser: Debian's chromium, headless, driven by selenium.

A gateway in front of two simulated replicas, each slower than the pool's p95 target, under a
little steady load. The page is opened once and never reloaded. Then one replica is killed. The
check passes when, without a reload, the page shows that replica ejected and a scale-out
decision (desired above current). It also needs no console errors, and on a phone-sized window
no horizontal scroll of the page itself (wide tables scroll inside their own box).

Usage: status_page_check.py [--bin .build/debug] [--screenshot docs/status-page.png [--linger SECONDS]]
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from localnet import free_port, start_gateway, start_replicas, stop_processes  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def fail(message, driver=None):
    if driver is not None:
        try:
            print(driver.page_source[:4000], file=sys.stderr)
        except Exception:  # noqa: BLE001 (the page is only context for the failure)
            pass
    raise SystemExit(f"status_page_check: {message}")


def wait_for(what, condition, timeout, driver):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    fail(f"{what} within {timeout} s", driver)


def load(port, stop):
    """A few requests at a time, until told to stop (bounded by the check's own end)."""
    body = json.dumps({"model": "sim-7b", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode()
    while not stop.is_set():
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"content-type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=5).read()
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build/debug")
    parser.add_argument("--screenshot", default=None)
    parser.add_argument("--linger", type=float, default=0, help="seconds to let the charts fill before the screenshot")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-status-page-")
    processes = []
    stop = threading.Event()
    driver = None
    try:
        replicas = start_replicas(args.bin, 2, work, ["--ttft-ms", "300", "--itl-ms", "10"], processes)
        port, admin = free_port(), free_port()
        config = os.path.join(work, "sluice.yaml")
        open(config, "w").write(f"""listen: "127.0.0.1:{port}"
admin: {{ listen: "127.0.0.1:{admin}" }}
workers: 1
log_level: warning
pools:
  - name: chat
    match: {{ paths: ["/v1/*"] }}
    replicas: ["127.0.0.1:{replicas[0]}", "127.0.0.1:{replicas[1]}"]
    routing: {{ policy: least-queue }}
    health: {{ eject_after: 2, eject_for: 120s }}
    max_concurrent_per_replica: 8
    scaling: {{ target_p95: 200ms, tick: 500ms, stable_window: 4s, panic_window: 1s, max_replicas: 6 }}
""")
        start_gateway(args.bin, config, admin, os.path.join(work, "sluice.log"), processes)

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,900"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.set_page_load_timeout(20)

        loaders = [threading.Thread(target=load, args=(port, stop), daemon=True) for _ in range(3)]
        for thread in loaders:
            thread.start()
        driver.get(f"http://127.0.0.1:{admin}/")
        if not driver.find_elements(By.CSS_SELECTOR, 'section.pool[data-pool="chat"]'):
            fail("the page as served shows no pool `chat`", driver)
        # Marks this document: a reload would lose the mark.
        driver.execute_script("window.sluiceCheckMark = 'same page';")
        first = driver.find_element(By.ID, "updated").get_attribute("data-at")
        wait_for("the page to poll once", lambda: driver.find_element(By.ID, "updated").get_attribute("data-at") != first, 10, driver)

        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait()
        ejected = f'tr[data-replica="127.0.0.1:{replicas[1]}"][data-state="ejected"]'
        wait_for("the killed replica shown ejected", lambda: driver.find_elements(By.CSS_SELECTOR, ejected), 30, driver)

        def scaled_out():
            decisions = driver.find_elements(By.CSS_SELECTOR, ".scale .decision")
            if not decisions:
                return False
            words = decisions[0].text.split()  # "N desired, M now"
            return int(words[0]) > int(words[2])
        wait_for("a scale-out decision (desired above current)", scaled_out, 30, driver)
        if not driver.find_elements(By.CSS_SELECTOR, ".scale svg polyline.p95[points*=',']"):
            fail("no p95 line in the chart", driver)
        routing = driver.find_element(By.CSS_SELECTOR, 'section.pool[data-pool="chat"]').text
        if "least_queue" not in routing or "(+" not in routing:
            fail("the routing decisions, with what they gained since the last poll, are not shown", driver)
        if driver.execute_script("return window.sluiceCheckMark;") != "same page":
            fail("the page was reloaded", driver)

        errors = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
        if errors:
            fail(f"console errors: {errors}", driver)

        if args.screenshot:
            time.sleep(min(args.linger, 120))
            driver.save_screenshot(args.screenshot)
        driver.set_window_size(390, 844)
        time.sleep(0.5)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        if overflow > 1:
            fail(f"on a phone-sized window the page scrolls sideways by {overflow} px", driver)
        print("status_page_check: ejection and scale-out shown without a reload, no console errors, fits a phone")
    finally:
        stop.set()
        if driver is not None:
            driver.quit()
        stop_processes(processes)


if __name__ == "__main__":
    main()
