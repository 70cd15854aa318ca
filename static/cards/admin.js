// Reveal a card's PIN in place (the server records every reveal). No PIN goes into a URL.
document.addEventListener("click", async (event) => {
  const button = event.target.closest(".card-pin__reveal");
  if (!button) return;
  const pin = button.parentElement.querySelector(".card-pin");
  const token = document.querySelector("input[name=csrfmiddlewaretoken]");
  button.disabled = true;
  const response = await fetch(pin.dataset.revealUrl, {
    method: "POST",
    headers: { "Accept": "application/json", "X-CSRFToken": token ? token.value : "" },
    credentials: "same-origin",
  });
  if (response.ok) {
    pin.textContent = (await response.json()).pin;
    button.remove();
  } else {
    button.disabled = false;
    button.textContent = "Not allowed";
  }
});
